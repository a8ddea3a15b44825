"""Media roots and safe resolution of a question's data_id to image files.

Roots are keyed by the annotation's source: SEED-Bench-2 uses `data_source`
("cc3m", "SEED-Bench v2"); SEED-Bench-1 uses "image" (dims 1-9) and, for the
video dims 10-12, "frames" (the 8-frame folders) or the raw video roots "ssv2",
"epic-kitchens", "breakfast" (see evaluator.video_sources). A root with key ""
applies to every source. Paths that escape their root are refused, symlinks included.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath

from PIL import Image

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"}


class MediaError(Exception):
    """A data_id that cannot be turned into image files; `field` names the culprit."""

    def __init__(self, field: str, reason: str):
        super().__init__(reason)
        self.field = field
        self.reason = reason


def parse_media_roots(specs: list[str]) -> dict[str, Path]:
    """Turn ["KEY=DIR", "DIR"] into {key: dir}; a bare DIR gets key "" (all sources)."""
    roots: dict[str, Path] = {}
    for spec in specs:
        key, sep, path = spec.partition("=")
        if not sep or "/" in key or os.sep in key:
            key, path = "", spec
        roots[key.strip()] = Path(path).expanduser()
    return roots


def root_for(roots: dict[str, Path], key: str) -> Path:
    if key in roots:
        return roots[key]
    if "" in roots:
        return roots[""]
    known = ", ".join(repr(k) for k in roots) or "none"
    raise MediaError("data_source", f"no --media-root for source {key!r} (given: {known})")


def safe_join(root: Path, rel: str, field: str = "data_id") -> Path:
    """Join rel under root, refusing absolute paths, '..' and symlinks that lead outside."""
    if not isinstance(rel, str) or not rel.strip():
        raise MediaError(field, "is empty")
    if (rel.startswith(("/", "\\")) or PurePosixPath(rel).is_absolute()
            or PureWindowsPath(rel).is_absolute() or PureWindowsPath(rel).drive):
        raise MediaError(field, f"{rel!r} is an absolute path; data_id must be relative")
    parts = PurePosixPath(rel.replace("\\", "/")).parts
    if ".." in parts:
        raise MediaError(field, f"{rel!r} escapes its media root ('..')")
    base = Path(os.path.realpath(root))
    path = Path(os.path.realpath(base.joinpath(*parts)))
    if path != base and base not in path.parents:
        raise MediaError(field, f"{rel!r} resolves outside its media root (symlink)")
    return path


def natural_key(name: str) -> tuple:
    """Sort key reading digit runs as numbers: `2.png` before `10.png`."""
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part.lower())
                 for part in re.split(r"(\d+)", name) if part)


def frame_files(folder: Path) -> list[Path]:
    """The image files of a frame folder, in numeric file-name order."""
    return sorted((p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES),
                  key=lambda p: natural_key(p.name))


def check_image(path: Path, field: str) -> None:
    """Cheap up-front check: the file exists and PIL recognises and verifies it."""
    if not path.is_file():
        raise MediaError(field, f"image file {path} is missing")
    try:
        with Image.open(path) as im:
            im.verify()
    except Exception as exc:
        raise MediaError(field, f"image file {path} is corrupt or not an image ({exc})") from None


@dataclass(frozen=True)
class EncodedImage:
    data: bytes
    sha256: str


def read_image(path: Path) -> EncodedImage:
    """Read the encoded file bytes as on disk: the server decodes, the client never does."""
    data = path.read_bytes()
    return EncodedImage(data=data, sha256=hashlib.sha256(data).hexdigest())
