"""Fingerprints: what results are keyed by, so a rerun against another model never
reuses old answers. Every backend computes its fingerprint here.

A model directory: config/tokenizer/processor files in full and, for each
weight file, its name, size and the first and last MiB (cheap even for 100+ GB
checkpoints), plus the settings that change outputs. Anything else (a remote
model, a script, a synthetic name): the identifying strings.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")
CHUNK = 1 << 20


def fingerprint_text(*parts: str | bytes) -> str:
    """Fingerprint of identifying strings (or bytes), order-sensitive."""
    h = hashlib.sha256()
    for p in parts:
        h.update((p.encode() if isinstance(p, str) else p) + b"\0")
    return h.hexdigest()[:16]


def fingerprint_dir(path: str | Path, extra: str = "") -> str:
    root = Path(path)
    h = hashlib.sha256()
    for f in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = f.relative_to(root).as_posix()
        if rel.startswith("."):
            continue
        h.update(rel.encode() + b"\0")
        if f.suffix in WEIGHT_SUFFIXES:
            size = f.stat().st_size
            h.update(str(size).encode())
            with f.open("rb") as fh:
                h.update(fh.read(CHUNK))
                if size > CHUNK:
                    fh.seek(max(CHUNK, size - CHUNK))
                    h.update(fh.read(CHUNK))
        elif f.suffix in (".json", ".jinja", ".txt", ".model", ".py"):
            h.update(f.read_bytes())
    h.update(extra.encode())
    return h.hexdigest()[:16]
