"""Where a question's images come from, behind one interface: a file or embedded bytes.

An image source is anything with `read_bytes()` and a `str()` that says where it
is: a `pathlib.Path` (a file under a media root) or an
`evaluator.data.embedded_images.EmbeddedImage` (bytes inside a parquet
snapshot, read when the question is sent). `read_image` is the one function
that turns a source into what a request carries; nothing is read before the
question is sent, and the caller runs it off the event loop.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Protocol

from evaluator.data.media import EncodedImage


class ImageSource(Protocol):
    def read_bytes(self) -> bytes: ...


def read_image(source: ImageSource) -> EncodedImage:
    """The encoded bytes as stored (file or snapshot) and their sha256: the server decodes,
    the client never does."""
    data = source.read_bytes()
    return EncodedImage(data=data, sha256=hashlib.sha256(data).hexdigest())


def stat_path(source: ImageSource) -> Path:
    """The file whose stat says whether the image may have changed: the image file itself,
    or the snapshot shard an embedded image is in."""
    return getattr(source, "shard", None) or Path(source)


def locate(text: str) -> ImageSource:
    """The source a recorded `str(source)` names (reports read option images back)."""
    from evaluator.data import embedded_images

    return embedded_images.from_locator(text) or Path(text)
