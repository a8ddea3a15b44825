"""SEED-Bench-1 sample videos in the benchmark's real layouts, written with PyAV.

Raw videos, as the three source datasets name them:
  OUT/ssv2/<n>.webm                          dim 10, whole clip (VP9)
  OUT/epic-kitchens/P01/P01_<k>.MP4          dim 11, `segment` in seconds (H.264)
  OUT/breakfast/P03/cam01/P03_<k>.avi        dim 12, `segment` in frame indices, 15 fps (MPEG-4)
and the benchmark's 8-frame folders keyed by question id:
  OUT/v1_video/task10/ssv2_8_frame/<question_id>/1.png..8.png (task11/kitchen_8_frame,
  task12/breakfast_8_frame), sampled from those videos with evaluator.data.video_frames,
  so both sources give the same frames for the same question.
A circle moves in one direction per clip; long videos hold three phases, each
asked about through its own segment. Encoding is bit-exact: a rerun is identical.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

from PIL import Image, ImageDraw

from evaluator.data.video_frames import RULES, VideoClip, decode_clip

SIZE = 64
PHASES = 3  # directions per long video (dims 11-12): one question per phase
PHASE_FRAMES = 20
VIDEO_ROOTS = {10: "ssv2", 11: "epic-kitchens", 12: "breakfast"}
FRAMES_ROOT = "v1_video"
FRAME_SUBS = {10: "ssv2_8_frame", 11: "kitchen_8_frame", 12: "breakfast_8_frame"}
FPS = {10: 12, 11: 10, 12: 15}
CODECS = {10: ("libvpx-vp9", {"crf": "30", "b:v": "0"}), 11: ("libx264", {"crf": "20"}),
          12: ("mpeg4", {"qscale": "3"})}


def _frame(direction: str, colour: tuple[int, int, int], t: float) -> Image.Image:
    """The circle at progress t in [0, 1] of its move."""
    img = Image.new("RGB", (SIZE, SIZE), "white")
    step = (t - 0.5) * 36
    dx, dy = {"left": (-step, 0), "right": (step, 0), "up": (0, -step), "down": (0, step)}[
        direction]
    cx, cy, r = SIZE / 2 + dx, SIZE / 2 + dy, 8
    ImageDraw.Draw(img).ellipse((cx - r, cy - r, cx + r, cy + r), fill=colour)
    return img


def write_video(path: Path, dim: int, frames: list[Image.Image]) -> None:
    import av

    codec, options = CODECS[dim]
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", container_options={"fflags": "+bitexact"}) as container:
        stream = container.add_stream(codec, rate=FPS[dim], options=options)
        stream.width = stream.height = SIZE
        stream.pix_fmt = "yuv420p"
        stream.thread_count = 1  # one thread: the same bytes every time
        for k, img in enumerate(frames):
            frame = av.VideoFrame.from_image(img).reformat(format="yuv420p")
            frame.pts = k
            frame.time_base = Fraction(1, FPS[dim])
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def clip_video(out: Path, dim: int, name: str, directions: list[str],
               colour: tuple[int, int, int], written: set[Path]) -> Path:
    """One video, a phase of PHASE_FRAMES frames per direction; written once per sample set
    (always rewritten then: a file left by another seed may hold other content)."""
    path = out / VIDEO_ROOTS[dim] / name
    if path not in written:
        write_video(path, dim, [_frame(d, colour, k / (PHASE_FRAMES - 1))
                                for d in directions for k in range(PHASE_FRAMES)])
        written.add(path)
    return path


def segment_of(dim: int, phase: int) -> list:
    """The segment of one phase: seconds for dim 11, frame indices for dim 12."""
    if dim == 11:
        return [phase * PHASE_FRAMES / FPS[dim], (phase + 1) * PHASE_FRAMES / FPS[dim]]
    return [phase * PHASE_FRAMES, (phase + 1) * PHASE_FRAMES]


def write_frame_folder(out: Path, dim: int, question_id: str, video: Path, data_id: str,
                       segment: list | None) -> None:
    """The benchmark's 8-frame folder for one question, sampled from its video."""
    seg = tuple(segment) if segment is not None else None
    decoded = decode_clip(VideoClip(video, data_id, RULES[dim], seg))
    folder = out / FRAMES_ROOT / f"task{dim}" / FRAME_SUBS[dim] / question_id
    folder.mkdir(parents=True, exist_ok=True)
    for k, png in enumerate(decoded.frames, start=1):
        (folder / f"{k}.png").write_bytes(png)
