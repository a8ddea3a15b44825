"""Image input both servers accept: the `<img>` placeholder and safe decoding."""

from __future__ import annotations

import io
import warnings

from PIL import Image

from serving.errors import InvalidRequest, TooLarge

# Marks where each image stands in a prompt's text, in order.
PLACEHOLDER = "<img>"
MAX_PIXELS = 64_000_000  # refuse decompression bombs well before PIL's own limit


def decode_image(data: bytes, field: str) -> Image.Image:
    """Decode one encoded image file as RGB, refusing undecodable or huge input by field name."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            if img.width * img.height > MAX_PIXELS:
                raise TooLarge(f"{field}: {img.width}x{img.height} pixels is too large")
            img.load()
    except TooLarge:
        raise
    except Exception as exc:
        raise InvalidRequest(field, f"cannot be decoded as an image ({exc})") from None
    return img.convert("RGB")
