"""Where each SEED-Bench-1 video dimension (10-12) reads its frames from.

Two ways users hold the data:
  `--media-root frames=DIR`: the benchmark's 8-frame folders (evaluator.data.frame_folders);
  raw videos, one root per dimension: `ssv2=DIR` (dim 10, `DIR/<data_id>`, whole clip),
  `epic-kitchens=DIR` (dim 11, `segment` in seconds), `breakfast=DIR` (dim 12,
  `segment` in frame indices), sampled by evaluator.data.video_frames.
Both given: the frames win for every dimension whose `DIR/taskNN/` exists. A bare
root (no key) is read as the frames layout when it holds `taskNN/`, else as a raw root.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from evaluator.data.frame_folders import FrameFolders
from evaluator.data.media import MediaError, safe_join
from evaluator.data.video_frames import RULES, VideoClip

VIDEO_DIMS = (10, 11, 12)
FRAMES_KEY = "frames"
RAW_KEYS = {10: "ssv2", 11: "epic-kitchens", 12: "breakfast"}
RAW_WHAT = {10: "whole clip", 11: "segment in seconds", 12: "segment in frame indices, 15 fps"}


@dataclass(frozen=True)
class VideoSource:
    """One dimension's source: the frame folders or a raw-video root."""

    dim: int
    kind: str  # "frames" | "video"
    key: str  # the --media-root key it came from ("" for a bare root)
    root: Path

    def describe(self) -> str:
        where = f"{self.key}={self.root}" if self.key else f"bare --media-root {self.root}"
        if self.kind == "frames":
            return f"8-frame folders, {where}"
        return f"raw videos, {where} ({RAW_WHAT[self.dim]})"


class VideoSources:
    """The choice per dimension, made once per run, and a question's media under it."""

    def __init__(self, roots: dict[str, Path]):
        self.roots = roots
        self._folders: dict[Path, FrameFolders] = {}
        self.by_dim = {d: self._choose(d) for d in VIDEO_DIMS}

    def _frames(self, root: Path) -> FrameFolders:
        if root not in self._folders:
            self._folders[root] = FrameFolders(root)
        return self._folders[root]

    def _choose(self, dim: int) -> VideoSource | None:
        raw_key = RAW_KEYS[dim]
        frames = self.roots.get(FRAMES_KEY)
        if frames is not None and (self._frames(frames).has_task(dim) or raw_key not in self.roots):
            return VideoSource(dim, "frames", FRAMES_KEY, frames)
        if raw_key in self.roots:
            return VideoSource(dim, "video", raw_key, self.roots[raw_key])
        bare = self.roots.get("")
        if bare is not None:
            kind = "frames" if self._frames(bare).has_task(dim) else "video"
            return VideoSource(dim, kind, "", bare)
        return None

    def describe(self, dims: set[int]) -> dict[int, str]:
        """dim -> the source it reads, for the run's printout."""
        out = {}
        for d in sorted(dims & set(VIDEO_DIMS)):
            src = self.by_dim[d]
            out[d] = src.describe() if src else "no source given"
        return out

    def resolve(self, dim: int, question_id: str, data_ids: tuple[str, ...],
                segment: tuple[float, float] | None) -> tuple[Path | None, VideoClip | None]:
        """(frame folder, None) or (None, video clip); raises MediaError naming the field."""
        src = self.by_dim[dim]
        if src is None:
            hint = (" (--media-root video= is not a SEED-Bench-1 layout)"
                    if "video" in self.roots else "")
            raise MediaError("data_id", f"no media root for video dimension {dim}: give "
                             f"--media-root frames=DIR (the benchmark's 8-frame folders) or "
                             f"{RAW_KEYS[dim]}=DIR (the raw videos){hint}")
        if src.kind == "frames":
            return self._frames(src.root).folder(dim, question_id), None
        if len(data_ids) != 1:
            raise MediaError("data_id", "a video question names one video file")
        path = safe_join(src.root, data_ids[0])
        if not path.is_file():
            hint = (" (for the benchmark's 8-frame folders use --media-root frames=DIR)"
                    if src.key == "" else "")
            raise MediaError("data_id", f"video file {path} is missing{hint}")
        return None, VideoClip(path, data_ids[0], RULES[dim], _check_segment(dim, segment))


def _check_segment(dim: int, segment: tuple[float, float] | None) -> tuple[float, float] | None:
    if RULES[dim] == "whole":
        return None
    if segment is None:
        raise MediaError("segment", f"is missing (dimension {dim} samples a segment of "
                                    f"its raw video: [start, end] {RAW_WHAT[dim]})")
    start, end = segment
    if start < 0 or end < start:
        raise MediaError("segment", f"must be [start, end] with 0 <= start <= end, "
                                    f"got {list(segment)}")
    if RULES[dim] == "frames":
        if not (float(start).is_integer() and float(end).is_integer()):
            raise MediaError("segment", f"dimension {dim} segments are frame indices "
                                        f"(integers), got {list(segment)}")
        return int(start), int(end)
    return float(start), float(end)
