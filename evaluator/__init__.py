"""SEED-Bench evaluator: loads the benchmark, asks model servers over gRPC, scores.

Depends on the standard library, grpcio, protobuf, pillow and rich only; it
never imports torch, so it installs on machines without a GPU stack.
"""

import os

# grpc's core logs each failed TLS handshake at INFO, read once when grpc is imported;
# the evaluator names the cause of a failed connection in one line of its own.
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
