"""SEED-Bench evaluator: loads the benchmark, asks model servers over gRPC, scores.

Depends on the standard library, grpcio, protobuf, pillow and rich only; it
never imports torch, so it installs on machines without a GPU stack.
"""
