"""SEED-Bench-1 raw videos: the benchmark's 8-frame sampling, PyAV decoding, a frame cache.

The reference interface samples 8 frames per video question (see `uniform_offsets`
and `clip_indices`); dims 10-12 differ only in which frames form the clip:
  whole   (dim 10, Something-Something v2): the whole clip, N = frames - 1;
  seconds (dim 11, Epic-Kitchens): `segment` = [start, end] seconds x average fps,
          both clamped to [0, frames - 1];
  frames  (dim 12, Breakfast): `segment` = [start, end] frame indices, end clamped
          to the frame count.
Decoding keeps at most the 8 wanted frames (already PNG-encoded) in memory: one
demux pass reads the presentation timestamps of every frame and keyframe, then
each wanted frame is decoded from the keyframe before it (or onward from the
previous one when no keyframe lies between); without usable timestamps the
stream is decoded from the start and counted.

Decoded frames are stored once in a content-addressed cache (`FrameCache`):
`frames/<sha256>.png` by the PNG's own hash, and `clips/<key>.json` naming them,
where the key hashes the video's content fingerprint, the rule and the segment.
A rerun or resume finds the clip file and decodes nothing.
"""

from __future__ import annotations

import asyncio
import bisect
import hashlib
import io
import json
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from evaluator.data.media import MediaError
from serving.atomic_files import write_atomic

FRAMES_PER_VIDEO = 8
RULES = {10: "whole", 11: "seconds", 12: "frames"}
SAMPLING_VERSION = "seed-bench-1 uniform 8 frames, v1"  # part of every cache key
_FINGERPRINT_BYTES = 1 << 20


def uniform_offsets(n: int, k: int = FRAMES_PER_VIDEO) -> list[int]:
    """The reference's uniform sampling over n frames (numpy's round: half to even)."""
    if n < k:
        return list(range(max(n, 0)))
    seg = (n - 1) / k
    start = int(seg / 2)
    return [start + round(seg * i) for i in range(k)]


def clip_indices(rule: str, frame_count: int, fps: float,
                 segment: Sequence[float] | None) -> list[int]:
    """Indices (into the decoded frames) that the benchmark's sampling takes."""
    if rule == "whole":
        return uniform_offsets(frame_count - 1)
    if segment is None:
        raise ValueError(f"rule {rule!r} needs a segment")
    start, end = segment
    if rule == "seconds":
        last = frame_count - 1
        s = int(min(max(start * fps, 0), last))
        e = int(min(max(end * fps, 0), last))
        return [s + o for o in uniform_offsets(e - s)]
    if rule == "frames":
        e = min(int(end), frame_count)
        return [int(start) + o for o in uniform_offsets(e - int(start))]
    raise ValueError(f"unknown sampling rule {rule!r}")


@dataclass(frozen=True)
class VideoClip:
    """The part of one video a question is about; resolved and checked by the loader."""

    path: Path  # the video file, inside its media root
    data_id: str
    rule: str  # "whole" | "seconds" | "frames"
    segment: tuple[float, float] | None = None

    def describe(self) -> str:
        seg = "" if self.segment is None else f" segment {list(self.segment)}"
        return f"video {self.data_id} ({self.path}){seg}"


class VideoError(MediaError):
    """A video that cannot be decoded or whose segment selects no frames."""


def encode_png(image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


@dataclass(frozen=True)
class DecodedClip:
    frame_count: int
    fps: float
    indices: list[int]
    frames: list[bytes]  # PNG, one per index
    mode: str = "timestamps"  # or "sequential": decoded from the start and counted


def _open(path: Path):
    import av  # imported here: only raw-video runs need FFmpeg

    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError) as exc:
        raise VideoError("data_id", f"cannot open video {path}: {exc}") from None
    if not container.streams.video:
        container.close()
        raise VideoError("data_id", f"video {path} has no video stream")
    return container


@dataclass(frozen=True)
class FrameTable:
    """What one demux pass (no decoding) tells about a video stream."""

    count: int  # frames (packets holding data)
    fps: float  # the container's average frame rate
    pts: list[int] | None  # every frame's presentation timestamp, sorted; None if unusable
    keyframes: list[int]  # presentation timestamps of the keyframes, sorted


def _frame_table(path: Path) -> FrameTable:
    with _open(path) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate or stream.guessed_rate or 0)
        pts: list[int] = []
        keyframes: list[int] = []
        usable = True
        for packet in container.demux(stream):
            if not packet.size:
                continue
            if packet.pts is None:
                usable = False
                continue
            pts.append(packet.pts)
            if packet.is_keyframe:
                keyframes.append(packet.pts)
        usable = usable and bool(keyframes) and len(set(pts)) == len(pts)
        return FrameTable(len(pts), fps, sorted(pts) if usable else None, sorted(keyframes))


def _decode_by_pts(path: Path, table: FrameTable, indices: list[int]) -> dict[int, bytes] | None:
    """Decode only from the keyframe before each wanted frame; None if timestamps mislead.

    Frames are decoded forward while the next wanted frame lies before the next
    keyframe, else the decoder seeks to that frame's keyframe: a short segment of a
    long video, or 8 frames spread over it, costs 8 keyframe intervals at most.
    """
    wanted = {table.pts[i]: i for i in indices}
    got: dict[int, bytes] = {}
    with _open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        frames = None
        position = None  # pts of the last decoded frame
        for target in sorted(wanted):
            if target in got:
                continue
            k = bisect.bisect_right(table.keyframes, target) - 1
            keyframe = table.keyframes[max(k, 0)]
            if frames is None or position is None or position < keyframe:
                container.seek(keyframe, stream=stream, backward=True, any_frame=False)
                frames = container.decode(stream)
            for frame in frames:
                if frame.pts is None:
                    continue
                position = frame.pts
                if frame.pts in wanted and wanted[frame.pts] not in got:
                    got[wanted[frame.pts]] = encode_png(frame.to_image())
                if frame.pts >= target:
                    break
            if wanted[target] not in got:
                return None  # the decoder went past it: timestamps do not index the frames
    return got


def _decode_sequential(path: Path, indices: list[int] | None) -> tuple[int, dict[int, bytes]]:
    """Decode every frame in order, counting; keep the frames at `indices`."""
    keep = set(indices or ())
    got: dict[int, bytes] = {}
    count = 0
    with _open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for count, frame in enumerate(container.decode(stream), start=1):
            if count - 1 in keep:
                got[count - 1] = encode_png(frame.to_image())
    return count, got


def decode_clip(clip: VideoClip, use_timestamps: bool = True) -> DecodedClip:
    """The clip's sampled frames as PNG bytes; raises VideoError with the reason."""
    import av

    try:
        table = _frame_table(clip.path)
        count, fps, got = table.count, table.fps, None
        if use_timestamps and table.pts is not None:
            indices = _indices(clip, count, fps)
            got = _decode_by_pts(clip.path, table, indices)
        mode = "timestamps"
        if got is None:  # no usable timestamps: count by decoding, then decode again
            mode = "sequential"
            count, _ = _decode_sequential(clip.path, None)
            indices = _indices(clip, count, fps)
            _, got = _decode_sequential(clip.path, indices)
    except av.FFmpegError as exc:
        raise VideoError("data_id", f"cannot decode {clip.describe()}: {exc}") from None
    missing = [i for i in indices if i not in got]
    if missing:
        raise VideoError("data_id", f"{clip.describe()}: frames {missing} could not be decoded "
                                    f"({count} frames)")
    return DecodedClip(count, fps, indices, [got[i] for i in indices], mode)


def _indices(clip: VideoClip, count: int, fps: float) -> list[int]:
    if count == 0:
        raise VideoError("data_id", f"{clip.describe()} has no frames")
    if clip.rule == "seconds" and fps <= 0:
        raise VideoError("data_id", f"{clip.describe()}: the container reports no frame rate")
    indices = clip_indices(clip.rule, count, fps, clip.segment)
    if not indices:
        unit = f"{count} frames at {fps:g} fps" if clip.rule == "seconds" else f"{count} frames"
        raise VideoError("segment", f"{clip.describe()} selects no frames (the video has {unit})")
    return indices


class FrameCache:
    """Sampled frames of raw videos, decoded once in worker threads, stored by content.

    `paths(clip)` is awaited by the runner; concurrent requests for one clip share
    one decode, and at most `workers` decodes run at once, so memory stays bounded
    (each holds at most its 8 PNG frames).
    """

    def __init__(self, root: Path, workers: int = 2):
        self.root = Path(root)
        self.workers = max(1, workers)
        self.decoded = 0  # clips decoded by this process (the rest came from the cache)
        self._pool: ThreadPoolExecutor | None = None
        self._pending: dict[VideoClip, asyncio.Future] = {}
        self._fingerprints: dict[tuple, str] = {}
        self._lock = threading.Lock()

    async def paths(self, clip: VideoClip) -> list[Path]:
        fut = self._pending.get(clip)
        if fut is None:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="video")
            fut = asyncio.get_running_loop().run_in_executor(self._pool, self.frames, clip)
            self._pending[clip] = fut
            fut.add_done_callback(lambda _f, c=clip: self._pending.pop(c, None))
        return list(await asyncio.shield(fut))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def frames(self, clip: VideoClip) -> list[Path]:
        """Blocking: the clip's frame files, decoding only when the cache lacks them."""
        record = self.root / "clips" / f"{self.key(clip)}.json"
        cached = self._read_record(record)
        if cached is not None:
            return cached
        decoded = decode_clip(clip)
        names = [self._put_frame(png) for png in decoded.frames]
        write_atomic(record, json.dumps({
            "data_id": clip.data_id, "rule": clip.rule,
            "segment": list(clip.segment) if clip.segment is not None else None,
            "frame_count": decoded.frame_count, "fps": decoded.fps,
            "indices": decoded.indices, "decoded": decoded.mode, "frames": names},
            indent=1).encode(), make_parents=True)
        with self._lock:
            self.decoded += 1
        return [self.root / "frames" / n for n in names]

    def key(self, clip: VideoClip) -> str:
        ident = {"video": self.fingerprint(clip.path), "rule": clip.rule,
                 "segment": list(clip.segment) if clip.segment is not None else None,
                 "sampling": SAMPLING_VERSION}
        return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()

    def fingerprint(self, path: Path) -> str:
        """The video's identity by content: its size, first and last MiB (not the whole file)."""
        st = path.stat()
        memo = (str(path), st.st_size, st.st_mtime_ns)
        with self._lock:
            if memo in self._fingerprints:
                return self._fingerprints[memo]
        h = hashlib.sha256(str(st.st_size).encode())
        with open(path, "rb") as f:
            h.update(f.read(_FINGERPRINT_BYTES))
            if st.st_size > 2 * _FINGERPRINT_BYTES:
                f.seek(-_FINGERPRINT_BYTES, os.SEEK_END)
                h.update(f.read())
        digest = h.hexdigest()
        with self._lock:
            self._fingerprints[memo] = digest
        return digest

    def _read_record(self, record: Path) -> list[Path] | None:
        try:
            names = json.loads(record.read_text(encoding="utf-8"))["frames"]
        except (OSError, ValueError, KeyError, TypeError):
            return None
        paths = [self.root / "frames" / str(n) for n in names]
        return paths if paths and all(p.is_file() for p in paths) else None

    def _put_frame(self, png: bytes) -> str:
        name = hashlib.sha256(png).hexdigest() + ".png"
        path = self.root / "frames" / name
        if not path.is_file():
            write_atomic(path, png, make_parents=True)
        return name


