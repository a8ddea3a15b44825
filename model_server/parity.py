"""`seedbench-model-server parity`: does the served path score what the naive reference does?

Users run it on their own checkpoint, on their own device and dtype, before a
long evaluation. The questions' Score requests are built by the evaluator's own
preset code (evaluator.run.methods, torch-free), exactly as a run sends them;
each is scored twice:

- served: through the real backend's prepare() and score() in batches, with
  whatever prefix sharing, packing and batching the settings choose;
- naive: parity_reference.NaiveScorer, one full forward per option, the
  sequence built straight from the request's recipe.

It prints the largest |difference| (per-option score under the preset's
reduction, and summed log-probability), whether the token counts agree, the
prediction agreement, the dtype and the served strategy, and exits 1 when a
count differs or the largest difference is over the tolerance (0: within it;
2: bad input, or a server that would refuse the preset).
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

# Largest |difference| of a per-option score (the preset's reduction) accepted by dtype:
# float32 agrees to rounding; half precision accumulates differently along the two paths.
TOLERANCE = {"float32": 1e-4, "float16": 2e-2, "bfloat16": 5e-2}
SAMPLE_ASPECT = (4, 3)  # built-in sample images are stretched to 4:3 so squash and crop differ

log = logging.getLogger(__name__)


def add_parser(sub) -> None:
    from model_server.backends.settings import DTYPES
    from model_server.cli import check_serve
    from serving import arg_types, lifecycle

    p = sub.add_parser("parity", help="compare the served scoring path with a naive per-option "
                                      "reference on this model, device and dtype")
    p.add_argument("--model", required=True, help="model directory")
    p.add_argument("--backend", default="hf", choices=["hf"], help="default: hf")
    p.add_argument("--preset", default="chat-mean", help="evaluator preset (default chat-mean)")
    p.add_argument("--method", default="ppl", choices=["ppl", "letter"], help="default: ppl")
    p.add_argument("--annotations", help="a SEED-Bench annotation file; default: built-in "
                                         "sample questions")
    p.add_argument("--media-root", action="append", default=[], metavar="SOURCE=DIR",
                   help="as for `seedbench run` (repeatable)")
    p.add_argument("--n", type=arg_types.positive_int, default=50,
                   help="questions compared (default 50)")
    p.add_argument("--batch", type=arg_types.positive_int, default=8,
                   help="questions per served score() call")
    p.add_argument("--device", type=arg_types.device, default="",
                   help="cpu, cuda, cuda:N (default: as serve)")
    p.add_argument("--dtype", default="", choices=("", *DTYPES), metavar="DTYPE",
                   help=f"{', '.join(DTYPES)} (default: as serve)")
    p.add_argument("--tolerance", type=arg_types.non_negative_float, default=None,
                   help="largest |difference| accepted; default by dtype: "
                        + ", ".join(f"{k} {v:g}" for k, v in TOLERANCE.items()))
    p.add_argument("--backend-arg", type=arg_types.key_value, action="append", default=[],
                   metavar="KEY=VALUE", help="backend setting, as for serve (e.g. packing=true)")
    p.add_argument("--seed", type=int, default=0, help="built-in sample questions' seed")
    lifecycle.add_log_level_arg(p, default="WARNING")
    # The backend's settings are converted and checked at parse time, exactly as for serve.
    p.set_defaults(func=cmd_parity, check=check_serve)


def fail(message: str) -> SystemExit:
    """One line on stderr and exit status 2 (bad input, or a preset the server refuses)."""
    print(f"seedbench-model-server parity: {message}", file=sys.stderr)
    return SystemExit(2)


def sample_questions(folder: Path, seed: int) -> tuple[Path, dict[str, Path]]:
    """The evaluator's sample benchmark (SEED-Bench-2 layout), images stretched to 4:3."""
    from PIL import Image

    from evaluator.data import sample_data

    ann = sample_data.write_v2(folder, seed=seed, per_dim=3)
    for path in sorted(folder.rglob("*")):
        if path.suffix.lower() in (".png", ".jpg", ".jpeg"):
            with Image.open(path) as im:
                w = im.width
                stretched = im.convert("RGB").resize((w, w * SAMPLE_ASPECT[1] // SAMPLE_ASPECT[0]))
            stretched.save(path)
    roots = {key: folder / sub for key, sub in sample_data.SOURCE_DIRS.items()}
    return ann, roots


def pick_questions(ann: Path, roots: dict[str, Path], n: int) -> list:
    """Up to n answerable questions (dims 1-24, images or frames on disk), dimensions taken
    in turn so a short run still covers single, multi-image, video and interleaved ones."""
    from evaluator.data import dataset

    ds = dataset.load(ann, roots)
    by_dim: dict[int, list] = {}
    for q in ds.questions:
        if q.dimension <= 24 and q.video is None:
            by_dim.setdefault(q.dimension, []).append(q)
    picked, rank = [], 0
    while len(picked) < n and any(rank < len(qs) for qs in by_dim.values()):
        picked += [qs[rank] for _, qs in sorted(by_dim.items()) if rank < len(qs)]
        rank += 1
    return picked[:n]


@dataclass
class Compared:
    question_id: str
    option: int
    served: tuple[float, int]
    naive: tuple[float, int]


def cmd_parity(args: argparse.Namespace) -> int:
    from evaluator.data.annotation_file import AnnotationError
    from evaluator.data.digests import FileDigests
    from evaluator.data.media import MediaError, parse_media_roots
    from evaluator.run import methods, presets
    from model_server import backends, requests
    from model_server.parity_reference import NaiveScorer
    from protos import seedbench_pb2 as pb
    from serving.errors import ServiceError

    try:
        preset = presets.get(args.preset)
    except ValueError as exc:
        raise fail(str(exc)) from None
    if why := methods.refusal(args.method, preset):
        raise fail(why)
    settings = args.settings  # converted at parse time (model_server.cli.check_serve)
    if not Path(args.model).is_dir():
        raise fail(f"--model {args.model}: not a model directory")
    with tempfile.TemporaryDirectory(prefix="seedbench-parity-") as tmp:
        try:
            if args.annotations:
                ann, roots = Path(args.annotations), parse_media_roots(args.media_root)
            else:
                ann, roots = sample_questions(Path(tmp), args.seed)
            questions = pick_questions(ann, roots, args.n)
        except (OSError, ValueError, MediaError, AnnotationError) as exc:
            raise fail(f"questions: {exc}") from None
        if not questions:
            raise fail(f"no answerable question (dims 1-24 with images on disk) in {ann}")
        try:
            backend = backends.create(args.backend, args.model, settings)
        except (OSError, ValueError) as exc:
            raise fail(f"--model {args.model}: cannot load it: {exc}") from None
        info = backend.info()
        tasks = []
        files = FileDigests()
        for q in questions:
            images = [pb.Image(data=im.data, sha256=im.sha256)
                      for im in (files.read(p) for p in q.images)]
            req = methods.score_request(q, args.method, preset, images)
            try:
                requests.check_score(req, info)
                task = requests.score_task(req)
                backend.admit(task)
            except ServiceError as exc:
                raise fail(f"question {q.question_id}: the server would refuse it: {exc}") from None
            tasks.append((q, task))
    naive = NaiveScorer(backend.model, backend.inputs.processor, backend.model.config)
    pairs, refused = [], []
    for start in range(0, len(tasks), args.batch):
        chunk = tasks[start:start + args.batch]
        results = backend.score([backend.prepare(t) for _, t in chunk])
        for (q, task), served in zip(chunk, results, strict=True):
            if isinstance(served, Exception):
                refused.append(f"{q.question_id}: {served}")
                continue
            for i, (s, r) in enumerate(zip(served, naive.score(task), strict=True)):
                pairs.append(Compared(q.question_id, i, (s.logprob_sum, s.num_tokens), r))
    dtype = str(getattr(backend, "dtype", "")).removeprefix("torch.")
    return report(args, info, dtype, preset, pairs, refused, len(tasks))


def report(args, info, dtype: str, preset, pairs: list[Compared], refused: list[str],
           asked: int) -> int:
    """Print the comparison; 0 within the tolerance, 1 over it (or counts differ)."""
    tolerance = args.tolerance if args.tolerance is not None else TOLERANCE.get(dtype, 5e-2)
    print(f"parity: {info.name} ({info.backend}, {info.details.get('architecture', '')}), "
          f"preset {preset.name} ({preset.kind}), method {args.method}")
    print(f"device {info.details.get('device', '')}, dtype {dtype}; served path: "
          f"{info.details.get('option_scoring', '')}, prefix sharing "
          f"{info.details.get('prefix_sharing', '')}, batches of {args.batch}")
    for line in refused:
        print(f"  refused by the served path: {line}")
    if not pairs:
        print("no question could be compared")
        return 2
    by_q: dict[str, list[Compared]] = {}
    for c in pairs:
        by_q.setdefault(c.question_id, []).append(c)
    agree = sum(preset.pick([c.served for c in cs]) == preset.pick([c.naive for c in cs])
                for cs in by_q.values())
    counts_equal = sum(c.served[1] == c.naive[1] for c in pairs)
    worst = max(pairs, key=lambda c: abs(preset.reduce(*c.served) - preset.reduce(*c.naive)))
    diff = abs(preset.reduce(*worst.served) - preset.reduce(*worst.naive))
    sum_diff = max(abs(c.served[0] - c.naive[0]) for c in pairs)
    print(f"questions compared: {len(by_q)} of {asked} ({len(pairs)} options)")
    print(f"token counts equal: {counts_equal}/{len(pairs)}")
    print(f"largest |difference|: {diff:.3g} ({preset.reduction} per option; question "
          f"{worst.question_id}, option {'ABCDEFGH'[worst.option] if worst.option < 8 else worst.option}); "
          f"summed log-probability {sum_diff:.3g}")
    print(f"predictions equal: {agree}/{len(by_q)}")
    ok = counts_equal == len(pairs) and diff <= tolerance
    print(f"tolerance {tolerance:g} ({dtype}): {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1
