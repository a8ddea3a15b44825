"""Small real videos for the SEED-Bench-1 video tests, each frame painted with its index.

A frame shows its index in binary as 8 vertical stripes (white = bit set), which
survives lossy codecs, so a decoded frame tells which source frame it is.
"""

from __future__ import annotations

import io
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

SIZE = 64
BITS = 8
# Short keyframe intervals, so sampling seeks; H.264 with B-frames (decode order != display).
CODECS = {".webm": ("libvpx-vp9", {"crf": "20", "b:v": "0", "g": "10"}),
          ".mp4": ("libx264", {"crf": "16", "g": "12", "bf": "2"}),
          ".avi": ("mpeg4", {"qscale": "2", "g": "12"})}


def painted(index: int) -> np.ndarray:
    a = np.zeros((SIZE, SIZE, 3), np.uint8)
    w = SIZE // BITS
    for b in range(BITS):
        if index >> b & 1:
            a[:, b * w:(b + 1) * w] = 255
    return a


def write_indexed_video(path: Path, frames: int, fps: int) -> Path:
    """A video whose frame k shows k; the codec follows the suffix (webm, mp4, avi)."""
    codec, options = CODECS[path.suffix.lower()]
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps, options=options)
        stream.width = stream.height = SIZE
        stream.pix_fmt = "yuv420p"
        for k in range(frames):
            frame = av.VideoFrame.from_ndarray(painted(k), format="rgb24").reformat(
                format="yuv420p")
            frame.pts, frame.time_base = k, Fraction(1, fps)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_painted_png(path: Path, index: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(painted(index)).save(path)


def index_of(image_bytes: bytes) -> int:
    """The index painted on a decoded frame."""
    a = np.asarray(Image.open(io.BytesIO(image_bytes)).convert("L"), dtype=np.float32)
    w = SIZE // BITS
    return sum(1 << b for b in range(BITS) if a[:, b * w + 1:(b + 1) * w - 1].mean() > 128)


def indices_of(paths) -> list[int]:
    return [index_of(Path(p).read_bytes()) for p in paths]
