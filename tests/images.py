"""Small deterministic test images, encoded as files would be."""

from __future__ import annotations

import hashlib
import io
import random

from PIL import Image, ImageDraw


def png(seed: int, size: tuple[int, int] = (48, 40)) -> bytes:
    rng = random.Random(seed)
    im = Image.new("RGB", size, tuple(rng.randrange(256) for _ in range(3)))
    draw = ImageDraw.Draw(im)
    for _ in range(3):
        x0, y0 = rng.randrange(size[0] // 2), rng.randrange(size[1] // 2)
        draw.rectangle([x0, y0, x0 + size[0] // 3, y0 + size[1] // 3],
                       fill=tuple(rng.randrange(256) for _ in range(3)))
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
