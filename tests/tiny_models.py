"""Build each tiny model once per test session (they are deterministic for a seed)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from serving.processes import child_env

_BUILT: dict[tuple[str, str], Path] = {}


def tiny_model(arch: str, base: Path, preset: str = "tiny") -> Path:
    """Write the tiny model with the real CLI (as a user would) and cache the path."""
    if (arch, preset) not in _BUILT:
        out = base / (f"tiny-{arch}" if preset == "tiny" else f"{preset}-{arch}")
        subprocess.run([sys.executable, "-m", "model_server.cli", "tiny", "--arch", arch,
                        "--preset", preset, "--out", str(out)], check=True, env=child_env(),
                       capture_output=True)
        _BUILT[arch, preset] = out
    return _BUILT[arch, preset]
