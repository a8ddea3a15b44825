"""`seedbench run`: evaluate a model server on an annotation file (or, with --dry-run, print
the plan). The flags are RunConfig's fields; the run itself is evaluator.run.session."""

from __future__ import annotations

import argparse
import json

from rich.console import Console

from evaluator.cli.common import ConsoleReporter, config_error, err, error
from evaluator.reports import terminal
from evaluator.reports.console import say, show
from evaluator.run import methods, presets
from evaluator.run.config import LEVELS, VERSIONS, ConfigError, RunConfig, default
from evaluator.run.session import RunFailed, evaluate, plan_run
from serving.security import add_client_args

EXIT_STOPPED = 3  # --max-cost reached: the answers so far are stored, the run resumes on rerun


def cmd_run(args: argparse.Namespace) -> int:
    try:
        config = RunConfig.from_args(args)
    except ConfigError as exc:
        return config_error(exc)
    if not args.dry_run:
        return run_and_show(config)
    try:
        run_plan = plan_run(config, ConsoleReporter())
    except RunFailed as exc:
        return error(str(exc))
    if args.json:
        print(json.dumps(run_plan.as_dict(), indent=2))
    else:
        show(Console(), terminal.plan_grid(run_plan))
    return 0


def run_and_show(config: RunConfig) -> int:
    """Evaluate with a progress bar, print the tables; the exit status of `seedbench run`:
    0, 1 (every question asked errored), 2 (could not run), 3 (stopped at --max-cost)."""
    from evaluator.run.progress import RichProgress

    try:
        result = evaluate(config, ConsoleReporter(RichProgress(err)))
    except RunFailed as exc:
        return error(str(exc))
    except KeyboardInterrupt:
        say(err, "interrupted: answers so far are stored; rerun to resume", "yellow")
        return 130
    terminal.print_result(result)
    if result.stopped:
        say(err, f"stopped: {result.stopped}; rerun with the same --out and a higher "
                 "--max-cost to finish", "yellow", soft_wrap=True)
        return EXIT_STOPPED
    return 1 if result.all_failed else 0


def add_parser(sub) -> None:
    r = sub.add_parser("run", help="evaluate a model server on an annotation file")
    add_annotation_args(r)
    r.add_argument("--media-root", action="append", default=[], metavar="[KEY=]DIR",
                   help="media root per source (none for a parquet snapshot: its images are "
                        "embedded): SEED-Bench-2 cc3m, 'SEED-Bench v2'; SEED-Bench-2-Plus "
                        "'SEED-Bench v2 plus' (or bare: data_id is text_rich/N.png); "
                        "SEED-Bench-1 image (dims 1-9), frames (the 8-frame folders, dims "
                        "10-12) or the raw videos ssv2, epic-kitchens, breakfast; a bare DIR "
                        "applies to every source (repeatable)")
    r.add_argument("--model", action="append", required=True, metavar="TARGET[,TARGET...]",
                   help="model server(s): HOST:PORT or any gRPC target (dns:///name:port)")
    r.add_argument("--out", required=True, help="output dir (results store, summary, submission)")
    add_filter_args(r)
    r.add_argument("--limit", type=int, help="first N selected questions only")
    r.add_argument("--method", choices=methods.METHODS, default=default("method"),
                   help="ppl: rank the choice texts (Score); letter: options listed, letters "
                        "ranked (Score); generate: options listed, the model's greedy answer "
                        "parsed for its letter (Generate)")
    r.add_argument("--preset", choices=list(presets.PRESETS), default=default("preset"),
                   help="reference interface: prompt format, reduction, end token, image "
                        "placement (`seedbench presets` lists them)")
    r.add_argument("--prices", metavar="FILE",
                   help="USD per 1M prompt/completion tokens per model name (JSON or .toml): "
                        '{"gpt-4o": {"prompt": 2.5, "completion": 10}}; the estimate goes '
                        "into run.json")
    r.add_argument("--max-cost", type=float, metavar="USD",
                   help="stop sending new questions once the estimated cost of this run "
                        "reaches USD (needs --prices); exit 3, rerun to resume")
    r.add_argument("--in-flight", type=int, default=default("in_flight"),
                   help="calls in flight (default: suggested_in_flight x replicas)")
    r.add_argument("--deadline-s", type=float, default=default("deadline_s"),
                   help="deadline of each call")
    r.add_argument("--retries", type=int, default=default("retries"),
                   help="retries of a call on UNAVAILABLE/DEADLINE_EXCEEDED")
    r.add_argument("--connect-timeout-s", type=float, default=default("connect_timeout_s"),
                   help="how long to wait for each replica's Info")
    r.add_argument("--clip", metavar="TARGET",
                   help="CLIP server (HOST:PORT or gRPC target) for L3, dims 25-27; they run "
                        "only with it and a model whose Info advertises generate_image")
    r.add_argument("--dry-run", action="store_true",
                   help="ask the servers' Info, print the plan (key, handler per dimension, "
                        "what cannot run and why) and stop: no question is sent, nothing written")
    r.add_argument("--json", action="store_true", help="with --dry-run: print the plan as JSON")
    r.add_argument("--outage-wait-s", type=float, default=default("outage_wait_s"),
                   help="when every replica is unreachable, pause and wait this long for one "
                   "to come back before failing the remaining questions (0: no waiting)")
    add_client_args(r)
    r.set_defaults(func=cmd_run)


def add_annotation_args(p: argparse.ArgumentParser) -> None:
    """Where the questions are, and which benchmark they are: what `run` and `score` share."""
    p.add_argument("--annotations", required=True,
                   help="SEED-Bench-1, -2 or -2-Plus annotations: the JSON file, a parquet "
                        "snapshot's .parquet shard (a hub-cache link too) or a folder of shards")
    p.add_argument("--benchmark",
                   help="SEED-Bench-1, SEED-Bench-2 or SEED-Bench-2-Plus (or v1, v2, v2plus): "
                        "overrides the detection from the file's fields")


def add_filter_args(p: argparse.ArgumentParser) -> None:
    """The question filters `run` and `score` share."""
    p.add_argument("--level", choices=LEVELS, help="cumulative: L2 = L1+L2")
    p.add_argument("--version", choices=VERSIONS, help="cumulative: v2 = v1+v2")
    p.add_argument("--subpart", help="exact subpart name, e.g. 'Video & Text Comprehension'")
    p.add_argument("--dimensions", help="comma-separated dimension ids, e.g. 1,5,23")
