"""SEED-Bench evaluator: loads the benchmark, asks model servers over gRPC, scores.

Depends on the standard library, grpcio, protobuf, pillow, rich, PyAV and pyarrow
(imported only to read a parquet snapshot) only; it never imports torch, so it
installs on machines without a GPU stack.

The public API (evaluator.api: RunConfig, evaluate, evaluate_async, plan,
load_run, compare, and the typed results) is imported on first use, so
importing one light module (`import evaluator.data.benchmarks`) stays light.
"""

from serving import environment

# grpc's core logs each failed TLS handshake at INFO, read once when grpc is imported;
# the evaluator names the cause of a failed connection in one line of its own.
environment.apply()  # serving/environment.py: GRPC_VERBOSITY=ERROR and the rest


def __getattr__(name: str):
    """The public API (evaluator.api.__all__), imported on first use."""
    if not name.startswith("_"):
        import evaluator.api as api

        if name in api.__all__:
            return getattr(api, name)
    raise AttributeError(f"module 'evaluator' has no attribute {name!r}")
