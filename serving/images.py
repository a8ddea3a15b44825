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
    """Decode one encoded image file as RGB, refusing undecodable or huge input by field name.

    Too many pixels is RESOURCE_EXHAUSTED whatever the size (over MAX_PIXELS, over
    PIL's own bomb limits), as is a message over the server's size limit (grpc's
    own check); undecodable bytes are INVALID_ARGUMENT.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            if img.width * img.height > MAX_PIXELS:
                raise TooLarge(f"{field}: {img.width}x{img.height} pixels is too large, at most "
                               f"{MAX_PIXELS} pixels")
            img.load()
    except TooLarge:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise TooLarge(f"{field}: too many pixels to decode, at most {MAX_PIXELS} ({exc})") from None
    except Exception as exc:
        raise InvalidRequest(field, f"cannot be decoded as an image ({exc})") from None
    return img.convert("RGB")
