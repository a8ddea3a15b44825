"""sha256 of media files, remembered by (path, size, mtime_ns, inode) across runs.

Deciding what a rerun may reuse needs the sha256 of every image a stored answer
was given (evaluator.results.content_key). Reading 24K images again to learn
it would cost as much as the run's own reads, so each digest is remembered
with the file's stat: while path, size, modification time and inode are
unchanged, the digest is taken as is; any change, a `touch` included, reads
the file once more. Digests are recorded where the run reads the image to
send it, so a first run reads each image once. As with any stat cache (git's
index is one), a file rewritten in place with the same size within the file
system's timestamp granularity would go unnoticed. An image embedded in a parquet
snapshot is remembered by its locator and the stat of its shard, so a rerun over
an unchanged snapshot reads no row group to key its answers.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable

from evaluator.data.image_source import ImageSource, read_image, stat_path
from evaluator.data.media import EncodedImage

# (path, size, mtime_ns, inode, sha256): the stored form
Entry = tuple[str, int, int, int, str]


def _stamp(st: os.stat_result) -> tuple[int, int, int]:
    return st.st_size, st.st_mtime_ns, st.st_ino


class FileDigests:
    """Thread-safe (media threads read images); `on_new` persists each new entry."""

    def __init__(self, known: Iterable[Entry] = (),
                 on_new: Callable[[Entry], None] | None = None):
        self._known = {path: ((size, mtime, inode), sha) for path, size, mtime, inode, sha in known}
        self._on_new = on_new
        self._lock = threading.Lock()
        self.hashed = 0  # files this process read only to learn their digest

    def _remember(self, path: str, stamp: tuple[int, int, int], sha: str) -> None:
        with self._lock:
            if self._known.get(path) == (stamp, sha):
                return
            self._known[path] = (stamp, sha)
        if self._on_new is not None:
            self._on_new((path, *stamp, sha))

    def sha256(self, source: ImageSource) -> str:
        """The image's digest: remembered while the stat of the file holding it is unchanged,
        else read and hashed."""
        key = str(source)
        stamp = _stamp(os.stat(stat_path(source)))
        with self._lock:
            known = self._known.get(key)
        if known is not None and known[0] == stamp:
            return known[1]
        image = self.read(source)
        with self._lock:
            self.hashed += 1
        return image.sha256

    def read(self, source: ImageSource) -> EncodedImage:
        """Read the image's bytes (to send them) through `read_image` and remember their digest
        on the way.

        The stat of the file holding the image (the image file, or a snapshot's shard) is
        taken before and after the read; one that changed meanwhile is not remembered (its
        next use reads it again)."""
        path = stat_path(source)
        before = _stamp(os.stat(path))
        image = read_image(source)
        if _stamp(os.stat(path)) == before:
            self._remember(str(source), before, image.sha256)
        return image
