"""Build each tiny model once per test session (they are deterministic for a seed).

Under pytest-xdist the workers share one copy: it is written under the session's
temporary folder (pytest-N, above each worker's popen-gwK) by whichever worker asks
first, the others waiting on a file lock, so no model is built twice.
"""

from __future__ import annotations

import fcntl
import subprocess
import sys
from pathlib import Path

from serving.processes import child_env

_BUILT: dict[tuple[str, str], Path] = {}


def session_root(base: Path) -> Path:
    """The session's temporary folder shared by all workers (pytest-of-USER/pytest-N), or
    `base` itself outside pytest's temporary folders."""
    for folder in (base, *base.parents):
        if folder.parent.name.startswith("pytest-of-"):
            return folder
    return base


def tiny_model(arch: str, base: Path, preset: str = "tiny") -> Path:
    """Write the tiny model with the real CLI (as a user would) and cache the path."""
    if (arch, preset) not in _BUILT:
        root = session_root(base) / "tiny-models"
        root.mkdir(exist_ok=True)
        out = root / (f"tiny-{arch}" if preset == "tiny" else f"{preset}-{arch}")
        with open(root / f"{out.name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # another worker may be writing it now
            if not (root / f"{out.name}.done").exists():
                subprocess.run([sys.executable, "-m", "model_server.cli", "tiny", "--arch", arch,
                                "--preset", preset, "--out", str(out)], check=True,
                               env=child_env(), capture_output=True)
                (root / f"{out.name}.done").touch()
        _BUILT[arch, preset] = out
    return _BUILT[arch, preset]
