"""`seedbench presets`, `seedbench score` and `seedbench sample-data`: the commands that
need no model server."""

from __future__ import annotations

import argparse
import json

from evaluator.cli.common import config_error, err, error, warn
from evaluator.cli.run import add_annotation_args, add_filter_args
from evaluator.data import dataset
from evaluator.reports import terminal
from evaluator.reports.console import say
from evaluator.run import presets
from evaluator.run.config import ConfigError, benchmark, dimensions, subpart
from serving.arg_types import positive_int


def cmd_presets(args: argparse.Namespace) -> int:
    if args.json:
        print(json.dumps({name: {**p.record(), "benchmarks": p.benchmarks}
                          for name, p in presets.PRESETS.items()}, indent=2))
        return 0
    print(presets.listing())
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    from evaluator.results import score_file

    try:
        filters = dataset.Filters(level=args.level, version=args.version,
                                  subpart=subpart(args.subpart),
                                  dimensions=dimensions(args.dimensions))
        scored, ds = score_file.score(args.annotations, args.predictions, filters,
                                      benchmark(args.benchmark))
    except ConfigError as exc:
        return config_error(exc)
    except dataset.AnnotationError as exc:
        return error(str(exc))
    except (OSError, UnicodeError) as exc:
        return error(f"--predictions {args.predictions}: cannot read it "
                      f"({getattr(exc, 'strerror', None) or exc})")
    for w in ds.warnings:
        warn(w)
    if ds.invalid:
        warn(f"{ds.rejected} invalid question(s) of {ds.file} not scored: "
              + "; ".join(str(x) for x in ds.invalid[:5])
              + (f" and {len(ds.invalid) - 5} more" if len(ds.invalid) > 5 else ""))
    if not ds.questions:
        return error(f"{ds.file}: no question matches the filters {filters.as_dict()}")
    if scored.missing == len(ds.questions):
        for line in score_file.describe(scored)[1:]:
            say(err, line, soft_wrap=True)
        return error(f"{args.predictions}: none of its {scored.predictions_read} prediction(s) "
                      f"is for a selected question of {ds.file}")
    if args.json:
        print(json.dumps(scored.summary.to_dict(), indent=2))
    else:
        terminal.print_report(scored.summary)
    for line in score_file.describe(scored):
        say(err, line, soft_wrap=True)
    return 0


def cmd_sample_data(args: argparse.Namespace) -> int:
    from evaluator.data import sample_data

    if args.format != "v2" and (args.full or args.mix is not None):
        return error("--full and --mix apply to --format v2 only")
    if args.full and args.mix is not None:
        return error("--full and --mix each set the question counts: give one")
    try:
        if args.format == "v1":
            path = sample_data.write_v1(args.out, seed=args.seed, per_dim=args.per_dim)
        elif args.format == "v2plus":
            from evaluator.data import sample_text_rich

            path = sample_text_rich.write(args.out, seed=args.seed, per_dim=args.per_dim)
        else:
            path = sample_data.write_v2(args.out, seed=args.seed, per_dim=args.per_dim,
                                        full=args.full, mix=args.mix)
    except ValueError as exc:  # a count sample_data cannot make (e.g. a mix under 24)
        return error(str(exc))
    except OSError as exc:
        return error(f"--out {args.out}: cannot write the sample data ({exc.strerror or exc})")
    print(path)
    return 0


def add_parsers(sub) -> None:
    pr = sub.add_parser("presets", help="list the reference-interface presets and the "
                                        "published rows each is meant to reproduce")
    pr.add_argument("--json", action="store_true", help="print them as JSON")
    pr.set_defaults(func=cmd_presets)

    sc = sub.add_parser("score", help="score a predictions file (a submission.jsonl or a "
                                      "published result file) against an annotation file")
    add_annotation_args(sc)
    sc.add_argument("--predictions", required=True, metavar="FILE",
                    help='{"question_id": ..., "prediction": "A"} per line; read tolerantly '
                         "(lines ending '},', extra keys, repeated ids: the last wins, or one "
                         "JSON array)")
    add_filter_args(sc)
    sc.add_argument("--json", action="store_true", help="print the summary as JSON")
    sc.set_defaults(func=cmd_score)

    s = sub.add_parser("sample-data", help="write a small synthetic benchmark")
    s.add_argument("--out", required=True, help="folder for the annotation file and its media")
    s.add_argument("--seed", type=int, default=0, help="same seed, byte-identical output")
    s.add_argument("--per-dim", type=positive_int, default=3, help="questions per dimension")
    s.add_argument("--full", action="store_true",
                   help="SEED-Bench-2's real per-dimension counts (~24K questions)")
    s.add_argument("--mix", type=positive_int, metavar="N",
                   help="N (at least 24) questions of dims 1-24 in SEED-Bench-2's L1+L2 "
                        "proportions")
    s.add_argument("--format", choices=["v1", "v2", "v2plus"], default="v2",
                   help="v2: SEED-Bench_v2_level1_2_3.json (27 dims); v1: SEED-Bench.json "
                        "(12 dims, with raw videos and 8-frame folders for dims 10-12); "
                        "v2plus: SEED-Bench-2-plus-text-rich.json and text_rich/ (800x800 "
                        "charts, maps and web pages)")
    s.set_defaults(func=cmd_sample_data)
