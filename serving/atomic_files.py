"""Every output file is written whole or not at all: one helper for the evaluator and the servers.

A reader (a user's script, a resumed run, a crash) sees either the previous
file or the new one, never half of it: the bytes go to a temporary file in the
same folder, which is flushed and fsynced, renamed over the target, and the
folder is fsynced so the rename itself survives a power cut. Writers that run
concurrently (worker threads, replicas) each get their own temporary name.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """Open a temporary file beside `path` for writing; on a clean exit it replaces `path`.

    On an exception the temporary file is removed and `path` is left as it was.
    `mode` is "w" (text) or "wb" (bytes).
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open writes only ('w' or 'wb'), got mode {mode!r}")
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    kwargs = {"encoding": encoding} if mode == "w" else {}
    try:
        with open(tmp, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_folder(path.parent)


def write_atomic(path: str | Path, data: str | bytes, *, make_parents: bool = False) -> Path:
    """Write `data` (text as UTF-8, or bytes) to `path` atomically; returns the path."""
    path = Path(path)
    if make_parents:
        path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path, "wb" if isinstance(data, bytes) else "w") as f:
        f.write(data)
    return path


def _fsync_folder(folder: Path) -> None:
    """Make the rename durable; file systems that cannot fsync a folder are left be."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
