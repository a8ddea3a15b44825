"""Fingerprints: what results are keyed by, so a rerun against another model never
reuses old answers. Every backend computes its fingerprint here.

A model directory: sha256 over EVERY byte of every weight file, and of the
config, tokenizer, chat template and processor files, plus the backend's
scoring settings (`extra`). Hashing a 14 GB checkpoint takes seconds, so the
per-file digests are cached beside the model (a hidden file) or, when the
folder is read-only, in a per-user cache folder; an entry is used only while
the file's size, mtime_ns, ctime_ns, inode and device are all unchanged, so a
touched, replaced or rewritten file is hashed again. Anything else (a remote
model, a script, a synthetic name): the identifying strings.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from serving.atomic_files import write_atomic

log = logging.getLogger(__name__)

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf", ".ckpt", ".msgpack", ".h5")
# Config, tokenizer, chat template and processor files (and remote code a model may ship).
TEXT_SUFFIXES = (".json", ".jinja", ".txt", ".model", ".py", ".tiktoken", ".vocab")
CACHE_NAME = ".seedbench-fingerprint.json"
CACHE_VERSION = 1
BUFFER = 8 << 20  # read size: large reads keep sha256 (not the syscalls) the cost
ENV_CACHE_DIR = "SEEDBENCH_CACHE_DIR"


def fingerprint_text(*parts: str | bytes) -> str:
    """Fingerprint of identifying strings (or bytes), order-sensitive."""
    h = hashlib.sha256()
    for p in parts:
        h.update((p.encode() if isinstance(p, str) else p) + b"\0")
    return h.hexdigest()[:16]


def hashed_files(root: Path) -> list[Path]:
    """The files a model directory's fingerprint covers, sorted; hidden ones are not."""
    out = []
    for f in root.rglob("*"):
        rel = f.relative_to(root)
        if any(part.startswith(".") for part in rel.parts) or not f.is_file():
            continue
        if f.suffix in WEIGHT_SUFFIXES or f.suffix in TEXT_SUFFIXES:
            out.append(f)
    return sorted(out, key=lambda f: f.relative_to(root).as_posix())


def file_key(st: os.stat_result) -> dict:
    """What must be unchanged for a cached digest to stand for the file."""
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "ctime_ns": st.st_ctime_ns,
            "ino": st.st_ino, "dev": st.st_dev}


def sha256_file(path: Path) -> str:
    """sha256 of every byte of the file, streamed (hashlib releases the GIL, so files hash
    in parallel threads)."""
    h = hashlib.sha256()
    buf = bytearray(BUFFER)
    view = memoryview(buf)
    with path.open("rb", buffering=0) as fh:
        while n := fh.readinto(buf):
            h.update(view[:n])
    return h.hexdigest()


def user_cache_dir() -> Path:
    """Where digests go when the model folder is read-only."""
    if os.environ.get(ENV_CACHE_DIR):
        return Path(os.environ[ENV_CACHE_DIR]) / "fingerprints"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "seedbench" / "fingerprints"


def cache_paths(root: Path) -> list[Path]:
    """Beside the model first, then the per-user cache (named by the folder's real path)."""
    name = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:32] + ".json"
    return [root / CACHE_NAME, user_cache_dir() / name]


def _read_cache(path: Path) -> dict[str, dict]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("version") != CACHE_VERSION:
        return {}
    files = data.get("files")
    return files if isinstance(files, dict) else {}


def _write_cache(paths: list[Path], root: Path, files: dict[str, dict]) -> Path | None:
    body = json.dumps({"version": CACHE_VERSION, "root": str(root.resolve()), "files": files},
                      indent=1, sort_keys=True).encode()
    for path in paths:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(path, body)
            return path
        except OSError as exc:
            log.debug("fingerprint cache not written to %s (%s)", path, exc)
    log.warning("fingerprint cache could not be written (tried %s); the next start hashes "
                "the model again", ", ".join(str(p) for p in paths))
    return None


@dataclass(frozen=True)
class DirFingerprint:
    digest: str
    files: int
    hashed: int  # files read and hashed this time
    hashed_bytes: int
    cached: int  # files whose digest came from the cache
    seconds: float
    cache: str  # where the digests are kept ("" when nowhere)

    def note(self) -> str:
        """One line for Info.details and the log."""
        where = f"; cache {self.cache}" if self.cache else "; not cached"
        return (f"sha256 of {self.files} files: {self.hashed} hashed "
                f"({self.hashed_bytes / 1e9:.2f} GB in {self.seconds:.1f} s), "
                f"{self.cached} from the cache{where}")


def _hash_checked(path: Path, key: dict) -> str:
    """The file's digest, refused if the file changed while it was read."""
    digest = sha256_file(path)
    if file_key(path.stat()) != key:
        raise OSError(f"{path} changed while it was hashed; start again once it is written")
    return digest


def fingerprint_model_dir(path: str | Path, extra: str = "", threads: int = 0) -> DirFingerprint:
    """The directory's fingerprint from all bytes of its weight and text files, plus `extra`."""
    root = Path(path)
    start = time.monotonic()
    files = hashed_files(root)
    paths = cache_paths(root)
    cached: dict[str, dict] = {}
    for p in reversed(paths):  # the folder's own cache wins over the per-user one
        cached.update(_read_cache(p))
    entries: dict[str, dict] = {}
    todo: list[tuple[str, Path, dict]] = []
    for f in files:
        rel = f.relative_to(root).as_posix()
        key = file_key(f.stat())
        hit = cached.get(rel)
        if isinstance(hit, dict) and {k: hit.get(k) for k in key} == key and hit.get("sha256"):
            entries[rel] = hit
        else:
            todo.append((rel, f, key))
    workers = threads or min(4, os.cpu_count() or 1)
    with ThreadPoolExecutor(max(1, min(workers, len(todo) or 1))) as pool:
        digests = list(pool.map(lambda t: _hash_checked(t[1], t[2]), todo))
    for (rel, _, key), digest in zip(todo, digests, strict=True):
        entries[rel] = {**key, "sha256": digest}
    h = hashlib.sha256()
    for f in files:
        rel = f.relative_to(root).as_posix()
        h.update(f"{rel}\0{entries[rel]['size']}\0{entries[rel]['sha256']}\0".encode())
    h.update(extra.encode())
    where = ""
    if todo or set(cached) != set(entries):
        written = _write_cache(paths, root, entries)
        where = str(written) if written else ""
    else:
        where = next((str(p) for p in paths if p.is_file()), "")
    fp = DirFingerprint(h.hexdigest()[:16], len(files), len(todo),
                        sum(t[2]["size"] for t in todo), len(files) - len(todo),
                        time.monotonic() - start, where)
    log.info("model fingerprint %s: %s", fp.digest, fp.note())
    return fp


def fingerprint_dir(path: str | Path, extra: str = "") -> str:
    """The directory's fingerprint (see fingerprint_model_dir)."""
    return fingerprint_model_dir(path, extra).digest
