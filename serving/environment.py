"""The environment every project process starts from, declared once.

Each default is set only where the variable is unset, so an operator's own value
always wins. Imports nothing but `os`: modules that must set these before torch,
transformers or grpc are imported (those read them once, on import) call `apply()`
first thing.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

DEFAULTS: dict[str, str] = {
    # Weights come from local directories only: a pod, a test or the demo never downloads.
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    # The tokenizers thread pool warns (and can deadlock) once a process forks or
    # runs tokenizers on several threads at once, as the servers' workers do.
    "TOKENIZERS_PARALLELISM": "false",
    # Idle OpenMP threads sleep instead of spinning: several torch processes on a few
    # cores (tests, the demo, local replicas, CPU-limited pods) otherwise starve each other.
    "OMP_WAIT_POLICY": "PASSIVE",
    # grpc's core logs each failed TLS handshake at INFO; the programs name the cause of
    # a failed connection in one line of their own.
    "GRPC_VERBOSITY": "ERROR",
}


def apply(env: MutableMapping[str, str] | None = None) -> MutableMapping[str, str]:
    """Set every default that `env` (default: this process's environment) lacks; returns it."""
    target = os.environ if env is None else env
    for key, value in DEFAULTS.items():
        target.setdefault(key, value)
    return target
