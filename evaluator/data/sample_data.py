"""A small synthetic benchmark in the official formats, with answers readable from the images.

Layout written under OUT (SEED-Bench-2 format):
  OUT/SEED-Bench_v2_level1_2_3.json   annotations, {"questions": [...], "question_type": {...}}
  OUT/cc3m/...                        data_source "cc3m" (dims 1-9, JPEG)
  OUT/seed_bench_v2/...               data_source "SEED-Bench v2" (dims 10-27, PNG)
Run with --media-root cc3m=OUT/cc3m --media-root "SEED-Bench v2=OUT/seed_bench_v2".
`--format v1` writes SEED-Bench-1 instead (OUT/SEED-Bench.json, OUT/image/, and the
video dims in both real layouts: see evaluator.data.sample_video).

Dimension 4 asks which quadrant a shape is in, 6 where one circle is relative to
another, 5 counts circles; the other single-image dimensions ask a shape's colour
or kind. Images come from a bounded pool named by their content (shape, colour, count,
motion frame), written on first use: `--full` (~24K questions) adds questions,
not files. Everything is a function of the seed: a rerun is byte-identical.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

from PIL import Image, ImageDraw

from evaluator.data.benchmarks import SEED_BENCH_1, SEED_BENCH_2
from serving.atomic_files import write_atomic

COLOURS = {"red": (220, 40, 40), "green": (40, 170, 60), "blue": (40, 70, 220),
           "yellow": (230, 200, 30), "purple": (140, 50, 170)}
SHAPES = ("circle", "square", "triangle", "star")
DIRECTIONS = ("left", "right", "up", "down")
# Instance Location: the quadrant a shape sits in; Spatial Relation: where one shape
# stands relative to another.
QUADRANTS = {"top left": (0, 0), "top right": (1, 0), "bottom left": (0, 1), "bottom right": (1, 1)}
RELATIONS = ("left", "right", "above", "below")
SIZE = 64
FRAMES = 8
# The seed of the demo model's training split (models/train_demo.py); evaluate it on others.
DEMO_TRAIN_SEED = 1000
V2_FILE = SEED_BENCH_2.file_name
V1_FILE = SEED_BENCH_1.file_name
SOURCE_DIRS = {"cc3m": "cc3m", "SEED-Bench v2": "seed_bench_v2"}
V1_SOURCES = ("image", "ssv2", "epic-kitchens", "breakfast")  # dims 1-9; raw videos of 10-12


def media_roots(out: str | Path, v1: bool = False) -> dict[str, Path]:
    """RunConfig.media_roots of the sample data written into `out` (by write_v2, or with
    `v1` by write_v1: its images and raw videos)."""
    out = Path(out)
    if v1:
        return {key: out / key for key in V1_SOURCES}
    return {key: out / folder for key, folder in SOURCE_DIRS.items()}
# SEED-Bench-2 per-dimension counts (1-24 as in the spec; 25-27 fill to 24,371).
FULL_COUNTS = [3158, 1831, 4649, 978, 2447, 657, 97, 331, 435, 330, 500, 501, 199, 277, 501,
               132, 501, 159, 1594, 1509, 1225, 1023, 120, 49, 400, 400, 368]


def _draw_shape(d: ImageDraw.ImageDraw, shape: str, cx: float, cy: float, r: float, fill) -> None:
    box = (cx - r, cy - r, cx + r, cy + r)
    if shape == "circle":
        d.ellipse(box, fill=fill)
    elif shape == "square":
        d.rectangle(box, fill=fill)
    elif shape == "triangle":
        d.polygon([(cx, cy - r), (cx + r, cy + r), (cx - r, cy + r)], fill=fill)
    else:
        pts = [(cx + (r if k % 2 == 0 else r / 2.5) * _cos(k * 36),
                cy + (r if k % 2 == 0 else r / 2.5) * _sin(k * 36)) for k in range(10)]
        d.polygon(pts, fill=fill)


def _cos(deg: float) -> float:
    return math.cos(math.radians(deg - 90))


def _sin(deg: float) -> float:
    return math.sin(math.radians(deg - 90))


class Pool:
    """Writes each distinct image once, under its source folder; returns data_id paths."""

    def __init__(self, out: Path):
        self.out = out
        self.written: set[Path] = set()

    def _save(self, source: str, rel: str, img: Image.Image) -> str:
        path = self.out / SOURCE_DIRS.get(source, source) / rel
        if path not in self.written:
            path.parent.mkdir(parents=True, exist_ok=True)
            if path.suffix == ".jpg":
                img.save(path, format="JPEG", quality=90)
            else:
                img.save(path, format="PNG")
            self.written.add(path)
        return rel

    def _ext(self, source: str) -> str:
        return "jpg" if source == "cc3m" else "png"

    def shape(self, source: str, shape: str, colour: str) -> str:
        img = Image.new("RGB", (SIZE, SIZE), "white")
        _draw_shape(ImageDraw.Draw(img), shape, SIZE / 2, SIZE / 2, SIZE / 3, COLOURS[colour])
        return self._save(source, f"shapes/{shape}_{colour}.{self._ext(source)}", img)

    def count(self, source: str, n: int, colour: str) -> str:
        img = Image.new("RGB", (SIZE, SIZE), "white")
        d = ImageDraw.Draw(img)
        for k in range(n):
            _draw_shape(d, "circle", 16 + 32 * (k % 2), 16 + 32 * (k // 2), 10, COLOURS[colour])
        return self._save(source, f"count/{n}_{colour}.{self._ext(source)}", img)

    def position(self, source: str, shape: str, colour: str, quadrant: str) -> str:
        col, row = QUADRANTS[quadrant]
        img = Image.new("RGB", (SIZE, SIZE), "white")
        _draw_shape(ImageDraw.Draw(img), shape, SIZE / 4 + col * SIZE / 2, SIZE / 4 + row * SIZE / 2,
                    SIZE / 6, COLOURS[colour])
        return self._save(source, f"position/{shape}_{colour}_{quadrant.replace(' ', '_')}"
                                  f".{self._ext(source)}", img)

    def relation(self, source: str, colour: str, other: str, relation: str) -> str:
        """`colour` circle `relation` (left/right/above/below) of an `other` circle."""
        img = Image.new("RGB", (SIZE, SIZE), "white")
        near, far = SIZE / 4, 3 * SIZE / 4
        (x1, y1), (x2, y2) = {"left": ((near, SIZE / 2), (far, SIZE / 2)),
                              "right": ((far, SIZE / 2), (near, SIZE / 2)),
                              "above": ((SIZE / 2, near), (SIZE / 2, far)),
                              "below": ((SIZE / 2, far), (SIZE / 2, near))}[relation]
        d = ImageDraw.Draw(img)
        _draw_shape(d, "circle", x1, y1, SIZE / 7, COLOURS[colour])
        _draw_shape(d, "circle", x2, y2, SIZE / 7, COLOURS[other])
        return self._save(source, f"relation/{colour}_{relation}_{other}.{self._ext(source)}", img)

    def frame(self, source: str, direction: str, colour: str, k: int) -> str:
        img = Image.new("RGB", (SIZE, SIZE), "white")
        step = (k - (FRAMES - 1) / 2) * 5
        dx, dy = {"left": (-step, 0), "right": (step, 0), "up": (0, -step), "down": (0, step)}[
            direction]
        _draw_shape(ImageDraw.Draw(img), "circle", SIZE / 2 + dx, SIZE / 2 + dy, 8,
                    COLOURS[colour])
        return self._save(source, f"motion/{direction}_{colour}/frame_{k}.{self._ext(source)}", img)


def _options(rng: random.Random, right: str, pool: list[str]) -> tuple[list[str], str]:
    """Four options holding `right` at a random letter; returns (options, letter)."""
    wrong = rng.sample([x for x in pool if x != right], 3)
    k = rng.randrange(4)
    opts = wrong[:k] + [right] + wrong[k:]
    return opts, "ABCD"[k]


def _v2_question(rng: random.Random, pool: Pool, dim: int, i: int) -> dict:
    source = "cc3m" if dim <= 9 else "SEED-Bench v2"
    colour = rng.choice(list(COLOURS))
    shape = rng.choice(SHAPES)
    q: dict = {"question_id": f"{dim}_{i}", "question_type_id": dim, "data_source": source,
               "level": SEED_BENCH_2.level_of(dim), "subpart": SEED_BENCH_2.subpart_of(dim),
               "version": "v1" if dim <= 9 or 20 <= dim <= 22 else "v2"}
    if dim == 5:
        n = rng.randint(1, 4)
        opts, ans = _options(rng, str(n), ["1", "2", "3", "4", "5"])
        q.update(question="How many circles are in the image?",
                 data_id=pool.count(source, n, colour), data_type="Single Image")
    elif dim == 4:
        quadrant = rng.choice(list(QUADRANTS))
        opts, ans = _options(rng, quadrant, list(QUADRANTS))
        q.update(question="Where is the shape in the image?",
                 data_id=pool.position(source, shape, colour, quadrant), data_type="Single Image")
    elif dim == 6:
        other = rng.choice([c for c in COLOURS if c != colour])
        relation = rng.choice(RELATIONS)
        opts, ans = _options(rng, relation, list(RELATIONS))
        q.update(question=f"Where is the {colour} circle relative to the {other} circle?",
                 data_id=pool.relation(source, colour, other, relation), data_type="Single Image")
    elif dim <= 16:
        if rng.random() < 0.5:
            opts, ans = _options(rng, colour, list(COLOURS))
            text = "What colour is the shape in the image?"
        else:
            opts, ans = _options(rng, shape, list(SHAPES))
            text = "Which shape is shown in the image?"
        q.update(question=text, data_id=pool.shape(source, shape, colour), data_type="Single Image")
    elif dim <= 18:
        other = rng.choice([c for c in COLOURS if c != colour])
        opts, ans = _options(rng, other, list(COLOURS))
        q.update(question="The shape in the first image is " + colour +
                 ". What colour is the shape in the second image?",
                 data_id=[pool.shape(source, shape, colour), pool.shape(source, shape, other)],
                 data_type="Multiple Images")
    elif dim <= 22:
        direction = rng.choice(DIRECTIONS)
        opts, ans = _options(rng, direction, list(DIRECTIONS))
        q.update(question="In which direction does the circle move?",
                 data_id=[pool.frame(source, direction, colour, k) for k in range(FRAMES)],
                 data_type="Video")
    elif dim <= 24:
        shapes = rng.sample(SHAPES, 3)
        colours = rng.sample(list(COLOURS), 3)
        opts, ans = _options(rng, f"A {colours[2]} {shapes[2]}.",
                             [f"A {c} {s}." for c in COLOURS for s in SHAPES])
        q.update(question=f"<img> A {colours[0]} {shapes[0]}. <img> A {colours[1]} {shapes[1]}. "
                          "<img> Describe the last image in the same way.",
                 data_id=[pool.shape(source, s, c) for s, c in zip(shapes, colours, strict=True)],
                 data_type="Interleaved Image")
    elif dim == 25:
        cands = [(s, c) for s in SHAPES for c in COLOURS if (s, c) != (shape, colour)]
        images = rng.sample(cands, 3)
        k = rng.randrange(4)
        images.insert(k, (shape, colour))
        opts, ans = ["1.jpg", "2.jpg", "3.jpg", "4.jpg"], "ABCD"[k]
        q.update(question=f"A {colour} {shape} on a white background.",
                 data_id=[pool.shape(source, s, c) for s, c in images],
                 data_type="Image Generation")
    elif dim == 26:
        direction = rng.choice(DIRECTIONS)
        frames = [pool.frame(source, direction, colour, k) for k in range(3)]
        wrong = [pool.frame(source, d, colour, 3) for d in DIRECTIONS if d != direction]
        k = rng.randrange(4)
        options = wrong[:k] + [pool.frame(source, direction, colour, 3)] + wrong[k:]
        opts, ans = ["1.jpg", "2.jpg", "3.jpg", "4.jpg"], "ABCD"[k]
        q.update(question="What comes next in this sequence?", data_id=frames + options,
                 data_type="Image Generation")
    else:
        pairs = rng.sample([(s, c) for s in SHAPES for c in COLOURS], 4)
        k = rng.randrange(4)
        pairs[k] = (shape, colour)
        if len(set(pairs)) < 4:
            pairs = [(shape, colour)] + [p for p in [(s, c) for s in SHAPES for c in COLOURS]
                                         if p != (shape, colour)][:3]
            k = 0
        opts = [f"A {c} {s}." for s, c in pairs]
        ans = "ABCD"[k]
        q.update(question=f"Draw a {colour} {shape} and describe it.",
                 data_id=[pool.shape(source, s, c) for s, c in pairs],
                 data_type="Image & Text Generation")
    q.update(choice_a=opts[0], choice_b=opts[1], choice_c=opts[2], choice_d=opts[3], answer=ans)
    return q


def mix_counts(total: int, dims: int = 24) -> list[int]:
    """`total` questions split over dims 1..`dims` in SEED-Bench-2's proportions (largest
    remainder, at least one each), so a small sample has the full run's mix of single
    images, image pairs, eight-frame videos and interleaved prompts."""
    weights = FULL_COUNTS[:dims]
    if total < dims:
        raise ValueError(f"a mix needs at least {dims} questions (one per dimension)")
    spare = total - dims
    exact = [spare * w / sum(weights) for w in weights]
    counts = [int(x) for x in exact]
    by_remainder = sorted(range(dims), key=lambda k: exact[k] - counts[k], reverse=True)
    for k in by_remainder[:spare - sum(counts)]:
        counts[k] += 1
    return [c + 1 for c in counts]


def write_v2(out: str | Path, seed: int = 0, per_dim: int = 3, full: bool = False,
             mix: int | None = None) -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    pool = Pool(out)
    questions = []
    counts = FULL_COUNTS if full else mix_counts(mix) if mix else [per_dim] * 27
    for dim in range(1, 28 if not mix else 25):
        n = counts[dim - 1]
        questions.extend(_v2_question(rng, pool, dim, i) for i in range(n))
    doc = {"questions": questions, "question_type": {n: d for d, n in SEED_BENCH_2.dimensions.items()}}
    return write_atomic(out / V2_FILE, json.dumps(doc, indent=1) + "\n")


def write_v1(out: str | Path, seed: int = 0, per_dim: int = 3) -> Path:
    """SEED-Bench-1 layout: OUT/SEED-Bench.json, OUT/image/ (dims 1-9), and for dims 10-12
    both the raw videos and the 8-frame folders (see evaluator.data.sample_video)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    pool = Pool(out)
    videos: dict = {"written": set()}  # (dim, k) -> (data_id, directions, colour)
    questions = []
    for dim in range(1, 13):
        for i in range(per_dim):
            if dim <= 9:
                colour = rng.choice(list(COLOURS))
                shape = rng.choice(SHAPES)
                opts, ans = _options(rng, colour, list(COLOURS))
                q = {"question_id": f"{dim}_{i}", "question": "What colour is the shape in the image?",
                     "data_id": pool.shape("image", shape, colour), "data_type": "image"}
            else:
                q, opts, ans = _v1_video_question(rng, out, dim, i, videos)
            q.update(question_type_id=dim, choice_a=opts[0], choice_b=opts[1], choice_c=opts[2],
                     choice_d=opts[3], answer=ans)
            questions.append(q)
    doc = {"questions": questions, "question_type": {n: d for d, n in SEED_BENCH_1.dimensions.items()}}
    return write_atomic(out / V1_FILE, json.dumps(doc, indent=1) + "\n")


BREAKFAST = ("cereals", "coffee", "juice", "milk", "pancake", "salat", "tea")


def _v1_video_question(rng: random.Random, out: Path, dim: int, i: int, videos: dict):
    """A video question: dim 10 a whole clip; dims 11-12 one phase (segment) of a long video."""
    from evaluator.data import sample_video as V

    qid = f"v{dim}_{i}"
    if dim == 10:
        direction = rng.choice(DIRECTIONS)
        colour = rng.choice(list(COLOURS))
        data_id = f"{90000 + 10 * DIRECTIONS.index(direction) + list(COLOURS).index(colour)}.webm"
        path = V.clip_video(out, dim, data_id, [direction], COLOURS[colour], videos["written"])
        segment = None
    else:
        k, phase = divmod(i, V.PHASES)
        if (dim, k) not in videos:
            directions = [rng.choice(DIRECTIONS) for _ in range(V.PHASES)]
            name = (f"P01/P01_{k + 1:02d}.MP4" if dim == 11
                    else f"P03/cam01/P03_{BREAKFAST[k % len(BREAKFAST)]}{k // len(BREAKFAST) or ''}.avi")
            videos[(dim, k)] = (name, directions, rng.choice(list(COLOURS)))
        data_id, directions, colour = videos[(dim, k)]
        direction = directions[phase]
        path = V.clip_video(out, dim, data_id, directions, COLOURS[colour], videos["written"])
        segment = V.segment_of(dim, phase)
    V.write_frame_folder(out, dim, qid, path, data_id, segment)
    opts, ans = _options(rng, direction, list(DIRECTIONS))
    q = {"question_id": qid, "question": "In which direction does the circle move?",
         "data_id": data_id, "data_type": "video"}
    if segment is not None:
        q["segment"] = segment
    return q, opts, ans
