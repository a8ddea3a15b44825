"""Media roots and safe resolution of a question's data_id to image files.

Roots are keyed by the annotation's source: SEED-Bench-2 and -2-Plus use `data_source`
("cc3m", "SEED-Bench v2", "SEED-Bench v2 plus"); SEED-Bench-1 uses "image" (dims 1-9) and, for the
video dims 10-12, "frames" (the 8-frame folders) or the raw video roots "ssv2",
"epic-kitchens", "breakfast" (see evaluator.data.video_sources). A root with key ""
applies to every source. Paths that escape their root are refused, symlinks included.
Which key a question uses is its benchmark definition's media rule (evaluator.data.benchmarks).
"""

from __future__ import annotations

import functools
import io
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath

from PIL import Image

from serving.images import MAX_PIXELS

MAX_NAME = 255  # bytes in one path component on common file systems
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
    if "\x00" in rel:
        raise MediaError(field, f"{rel!r} contains a NUL byte")
    long = [p for p in rel.replace("\\", "/").split("/") if len(p.encode("utf-8")) > MAX_NAME]
    if long:
        raise MediaError(field, f"has a path component of {len(long[0].encode('utf-8'))} bytes; "
                                f"file names hold at most {MAX_NAME}")
    if (rel.startswith(("/", "\\")) or PurePosixPath(rel).is_absolute()
            or PureWindowsPath(rel).is_absolute() or PureWindowsPath(rel).drive):
        raise MediaError(field, f"{rel!r} is an absolute path; data_id must be relative")
    parts = PurePosixPath(rel.replace("\\", "/")).parts
    if ".." in parts:
        raise MediaError(field, f"{rel!r} escapes its media root ('..')")
    base = Path(os.path.realpath(root))
    path = Path(os.path.realpath(base.joinpath(*parts)))
    if path == base:
        raise MediaError(field, f"{rel!r} names the media root itself, not an image or a "
                                "frame folder in it")
    if base not in path.parents:
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
    """Up-front check: the file exists and decodes completely (a truncated file fails
    here, not on the server) within PIL's decompression limit and the servers' pixel cap."""
    if not path.is_file():
        raise MediaError(field, f"image file {path} is missing")
    st = path.stat()
    problem = _image_problem(str(path), st.st_mtime_ns, st.st_size)
    if problem:
        raise MediaError(field, f"image file {path} {problem}")


@functools.lru_cache(maxsize=1 << 16)
def _image_problem(path: str, mtime_ns: int, size: int) -> str | None:
    """Why the file is not a usable image, or None; cached per file version, since one
    option image can serve many questions."""
    return image_problem(path)


def bytes_problem(data: bytes) -> str | None:
    """Why encoded image bytes (embedded in a snapshot) are not a usable image, or None."""
    return image_problem(io.BytesIO(data))


def image_problem(source: str | io.BytesIO) -> str | None:
    """Why a file or buffer does not decode completely within PIL's decompression limit and
    the servers' pixel cap, or None."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(source) as im:
                im.verify()
            if isinstance(source, io.BytesIO):
                source.seek(0)
            with Image.open(source) as im:
                if im.width * im.height > MAX_PIXELS:
                    return (f"is {im.width}x{im.height} pixels; the servers decode at most "
                            f"{MAX_PIXELS} pixels")
                # JPEG: decode at 1/8 scale; every byte is still read, so truncation shows.
                im.draft("RGB", (max(1, im.width // 8), max(1, im.height // 8)))
                im.load()
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        return f"is over the decompression limit ({exc})"
    except Exception as exc:  # noqa: BLE001 - whatever PIL raises, the image is unusable
        return f"is corrupt, truncated or not an image ({exc})"
    return None


@dataclass(frozen=True)
class EncodedImage:
    data: bytes
    sha256: str
