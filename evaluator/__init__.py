"""SEED-Bench evaluator: loads the benchmark, asks model servers over gRPC, scores.

Depends on the standard library, grpcio, protobuf, pillow and rich only; it
never imports torch, so it installs on machines without a GPU stack.
"""

from serving import environment

# grpc's core logs each failed TLS handshake at INFO, read once when grpc is imported;
# the evaluator names the cause of a failed connection in one line of its own.
environment.apply()  # serving/environment.py: GRPC_VERBOSITY=ERROR and the rest
