"""seedbench: evaluate model servers on SEED-Bench-1, -2 and -2-Plus, report and compare runs,
score a predictions file, make sample data."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.text import Text

from evaluator.data import benchmarks as B
from evaluator.data import dataset
from evaluator.data.video_frames import FrameCache
from evaluator.reports import terminal
from evaluator.results import summary as report
from evaluator.results.store import Store, StoreError
from evaluator.run import cost, handlers, l3, methods, plan, presets, runner
from evaluator.run.client import FingerprintMismatch, ModelPool, NoEndpoints, OutageWait, RetryPolicy
from evaluator.run.clip_client import ClipClient, ClipUnavailable, clip_record
from evaluator.run.config import ConfigError, RunConfig, benchmark, dimensions, subpart
from serving.arg_types import positive_int
from serving.atomic_files import write_atomic
from serving.security import add_client_args

err = Console(stderr=True)
FRAME_CACHE = "frame-cache"  # under --out: sampled frames of raw videos (evaluator.data.video_frames)


EXIT_STOPPED = 3  # --max-cost reached: the answers so far are stored, the run resumes on rerun


def _error(message: str) -> int:
    """Print a user-facing error (never parsed as markup: paths may hold brackets); exit 2."""
    err.print(Text(f"error: {message}", style="red"), soft_wrap=True)
    return 2


def _warn(message: str) -> None:
    err.print(Text(f"warning: {message}", style="yellow"), soft_wrap=True)


@dataclass
class Servers:
    """The connected model pool (and CLIP client) of a run."""

    pool: ModelPool
    info: object  # the model's InfoResponse
    clip: ClipClient | None = None


@asynccontextmanager
async def connected(config: RunConfig):
    """Ask Info of every replica (and the CLIP server); always closes the channels."""
    pool = ModelPool(list(config.targets), deadline_s=config.deadline_s,
                     retry=RetryPolicy(attempts=config.retries + 1), security=config.security,
                     outage=OutageWait(config.outage_wait_s, report=_warn))
    clip: ClipClient | None = None
    try:
        info = await pool.connect(info_timeout_s=config.connect_timeout_s)
        for ep in pool.endpoints:
            if ep.info is None:
                _warn(f"{ep.target} left out: {ep.status}")
        if config.clip:
            clip = ClipClient(config.clip, deadline_s=config.deadline_s,
                              retry=RetryPolicy(attempts=config.retries + 1),
                              security=config.security)
            clip_info = await clip.connect(info_timeout_s=config.connect_timeout_s)
            if not clip_info.fingerprint:
                raise ClipUnavailable(f"CLIP server {config.clip} reports no fingerprint")
        yield Servers(pool, info, clip)
    finally:
        await pool.close()
        if clip is not None:
            await clip.close()


def make_plan(config: RunConfig, ds: dataset.Dataset, servers: Servers) -> plan.RunPlan:
    clip = servers.clip
    p = plan.build(
        config, ds, servers.info, handlers.default_handlers(ds.definition),
        clip_record=clip_record(clip.info) if clip else None,
        l3_handlers=l3.L3Scorer(clip, config.out).handlers() if clip else None,
        suggested_in_flight=servers.pool.suggested_in_flight(),
        endpoints=[{"target": ep.target, "status": ep.status} for ep in servers.pool.endpoints])
    note = l3.missing_note(True, servers.info.capabilities.generate_image, servers.info.name)
    if clip is not None and p.key.clip == "" and note:
        _warn(note)
    return p


async def evaluate(config: RunConfig, ds: dataset.Dataset,
                   progress: runner.Progress | None = None) -> dict:
    """Connect, plan, record the run, answer what is missing, write outputs.

    Returns {"summary": summary.json's content, "run": run.json's content}.
    """
    async with connected(config) as servers:
        run_plan = make_plan(config, ds, servers)
        budget = cost.budget_for(servers.info.name, config.prices, config.max_cost)
        if config.prices is not None and budget.price is None:
            _warn(f"--prices has no entry for the model {servers.info.name!r}: "
                  "no cost estimate for this run")
        store = Store(config.out)
        try:
            store.set_selection(ds.questions, run_plan.unsupported(ds.questions))
            store.set_meta("run", run_plan.record)
            if ds.definition.subtype_field:
                store.set_meta(report.SUBTYPES, {q.question_id: q.subtype for q in ds.questions})
            video_frames = FrameCache(config.out / FRAME_CACHE)
            try:
                with ThreadPoolExecutor(4, thread_name_prefix="media") as media:
                    ctx = handlers.RunContext(
                        servers.pool, config.method, config.preset, config.deadline_s, media,
                        video_frames,
                        stop_sending=lambda: budget.exhausted(servers.pool.endpoints))
                    stats = await runner.run_questions(ds.questions, store, run_plan, ctx,
                                                       progress)
            finally:
                video_frames.close()
            summary = report.write_outputs(store, config.out)
        finally:
            store.close()
        clip_stats = servers.clip.stats() if servers.clip else None
        outage = {"outages": servers.pool.outage.outages,
                  "waited_s": round(servers.pool.outage.waited_s, 1)}
        usage = budget.record(servers.pool.endpoints)
    # Run-specific facts (timings, per-replica calls) live apart from summary.json,
    # which must be identical however many times a run was interrupted.
    run_info = {"method": config.method, "preset": config.preset.name,
                "in_flight": run_plan.in_flight, "todo": stats.todo, "answered": stats.answered,
                "errors": stats.errors, "elapsed_s": round(stats.elapsed_s, 3),
                "cpu_s": round(stats.cpu_s, 3),
                "throughput_qps": round(stats.answered / stats.elapsed_s, 2) if stats.elapsed_s else 0.0,
                "latency_ms": stats.latency_ms, "endpoints": stats.endpoints, "clip": clip_stats,
                "video_sources": {str(d): s for d, s in ds.video_sources.items()},
                "videos_decoded": video_frames.decoded, "outage_wait": outage,
                "usage": usage, "stopped": stats.stopped}
    write_atomic(config.out / "run.json", json.dumps(run_info, indent=2) + "\n")
    return {"summary": summary, "run": run_info}


async def plan_only(config: RunConfig, ds: dataset.Dataset) -> plan.RunPlan:
    """Connect (Info only) and plan; no question is sent and nothing is written."""
    async with connected(config) as servers:
        run_plan = make_plan(config, ds, servers)
        cost.budget_for(servers.info.name, config.prices, config.max_cost)  # a cap it can't keep
        return run_plan


def _load(config: RunConfig) -> dataset.Dataset | None:
    try:
        ds = dataset.load(config.annotations, config.media_roots, config.filters,
                          config.benchmark)
    except dataset.AnnotationError as exc:
        _error(str(exc))
        return None
    for w in ds.warnings:
        _warn(w)
    if config.preset.name not in ds.definition.presets:
        _warn(f"preset {config.preset.name} follows {config.preset.interface}, which was not "
              f"written for {ds.benchmark}; its presets: {', '.join(ds.definition.presets)}")
    if not config.dry_run:
        try:
            config.out.mkdir(parents=True, exist_ok=True)
            with open(config.out / "invalid.jsonl", "w", encoding="utf-8") as f:
                for bad in ds.invalid:
                    f.write(json.dumps(bad.as_dict()) + "\n")
        except OSError as exc:
            _error(f"--out {config.out}: cannot write the output folder "
                   f"({exc.strerror or exc})")
            return None
    if ds.invalid:
        where = "" if config.dry_run else f" (also in {config.out / 'invalid.jsonl'})"
        err.print(Text(f"{ds.rejected} invalid question(s) skipped{where}:", style="yellow"),
                  soft_wrap=True)
        for bad in ds.invalid:
            err.print(f"  {bad}", markup=False, highlight=False, soft_wrap=True)
    if not ds.questions:
        _error(f"{ds.file}: no valid question selected ({ds.rejected} invalid, listed "
               "above)" if ds.invalid else
               f"{ds.file}: no question matches the filters {config.filters.as_dict()}")
        return None
    err.print(f"{ds.benchmark}: {len(ds.questions)} question(s) selected from {ds.file}",
              markup=False, highlight=False, soft_wrap=True)
    for dim, source in ds.video_sources.items():
        err.print(f"  video dimension {dim}: {source}", markup=False, highlight=False,
                  soft_wrap=True)
    return ds


def cmd_run(args: argparse.Namespace) -> int:
    from evaluator.run.progress import RichProgress

    try:
        config = RunConfig.from_args(args)
    except ConfigError as exc:
        return _error(str(exc))
    ds = _load(config)
    if ds is None:
        return 2
    try:
        if config.dry_run:
            run_plan = asyncio.run(plan_only(config, ds))
        else:
            result = asyncio.run(evaluate(config, ds, progress=RichProgress(err)))
    except (FingerprintMismatch, NoEndpoints, ClipUnavailable, plan.PlanError,
            cost.PriceError, StoreError) as exc:
        return _error(str(exc))
    except KeyboardInterrupt:
        err.print("[yellow]interrupted: answers so far are stored; rerun to resume")
        return 130
    if config.dry_run:
        if args.json:
            print(json.dumps(run_plan.as_dict(), indent=2))
        else:
            Console().print(run_plan.table())
        return 0
    terminal.print_report(result["summary"])
    terminal.print_run(result["run"])
    if result["run"]["stopped"]:
        err.print(Text(f"stopped: {result['run']['stopped']}; rerun with the same --out and a "
                       "higher --max-cost to finish", style="yellow"), soft_wrap=True)
        return EXIT_STOPPED
    return 1 if report.all_failed(result["summary"]) else 0


def cmd_report(args: argparse.Namespace) -> int:
    path = Path(args.dir) / Store.FILE
    if not path.exists():
        return _error(f"{path} does not exist")
    try:
        store = Store(args.dir)
    except StoreError as exc:
        return _error(str(exc))
    try:
        summary = report.build_summary(store)
    except ValueError as exc:
        return _error(str(exc))
    finally:
        store.close()
    # Files first: a reader that leaves the printed tables early must not cost the page.
    rc = _pages([args.dir], None, args.html, args.png)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        terminal.print_report(summary)
        last_run = report.read_run(Path(args.dir))
        if last_run and last_run.get("usage"):
            terminal.print_usage(last_run["usage"], last_run.get("stopped"))
    if rc:
        return rc
    return 1 if report.all_failed(summary) else 0


def preset_benchmarks(name: str) -> list[str]:
    """The benchmarks whose definition lists the preset as one of its interfaces."""
    return [b.name for b in B.BENCHMARKS.values() if name in b.presets]


def cmd_presets(args: argparse.Namespace) -> int:
    if args.json:
        print(json.dumps({name: {**p.record(), "benchmarks": preset_benchmarks(name)}
                          for name, p in presets.PRESETS.items()}, indent=2))
        return 0
    lines = ["Presets (--preset NAME). Results under different presets are not comparable.", ""]
    for p in presets.PRESETS.values():
        joint = f"after {p.option_prefix!r}" if p.option_prefix else "directly"
        prompt = (f"raw {p.prompt!r}, option appended {joint} (no chat template)"
                  if p.raw else "the model's chat template")
        scored = ("option + " + ("EOS" if p.raw else "end-of-turn")) if p.end_token else "option"
        placement = ("the first image only" if p.images == "first" else "all, before the text")
        if p.letter_suffix:
            scored += f" (letters scored as 'A{p.letter_suffix}')"
        lines += [f"{p.name}{' (default)' if p.name == presets.DEFAULT else ''}",
                  f"  interface:            {p.interface}",
                  f"  prompt:               {prompt}",
                  f"  scored tokens:        {scored}",
                  f"  reduction:            {p.reduction}",
                  f"  images without <img>: {placement}",
                  f"  benchmarks:           {', '.join(preset_benchmarks(p.name)) or 'none'}",
                  f"  note:                 {p.note}" if p.note else None,
                  "  meant to reproduce:   " + ("\n" + " " * 24).join(p.reproduces or ("none",)),
                  ""]
    lines += [f"Published row without a preset: {row}" for row in presets.unmatched_rows()]
    print("\n".join(line for line in lines if line is not None))
    return 0


def _pages(dirs: list[str], reference: str | None, html: str | None, png: str | None,
           result: dict | None = None) -> int:
    """The HTML page and PNG exports of `seedbench report` / `compare`, when asked for."""
    if not html and not png:
        return 0
    from evaluator.reports import compare

    try:
        result = result or compare.build(dirs, reference)
    except compare.CompareError as exc:
        return _error(str(exc))
    if html:
        from evaluator.reports import html as html_report

        try:
            err.print(f"wrote {html_report.write(result, html)}", highlight=False)
        except OSError as exc:
            return _error(f"--html {html}: cannot write it ({exc.strerror or exc})")
    if png:
        from evaluator.reports import png as png_export

        try:
            for path in png_export.write(result, png):
                err.print(f"wrote {path}", highlight=False)
        except png_export.MatplotlibMissing as exc:
            return _error(str(exc))
        except OSError as exc:
            return _error(f"--png {png}: cannot write the figures ({exc.strerror or exc})")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from evaluator.reports import compare

    try:
        result = compare.build(args.dirs, args.reference)
    except compare.CompareError as exc:
        return _error(str(exc))
    rc = _pages(args.dirs, args.reference, args.html, args.png, result)
    if args.json:
        print(json.dumps(compare.public(result), indent=2))
    else:
        compare.print_compare(result)
    return rc


def cmd_score(args: argparse.Namespace) -> int:
    from evaluator.results import score_file

    try:
        filters = dataset.Filters(level=args.level, version=args.version,
                                  subpart=subpart(args.subpart),
                                  dimensions=dimensions(args.dimensions))
        scored, ds = score_file.score(args.annotations, args.predictions, filters,
                                      benchmark(args.benchmark))
    except (ConfigError, dataset.AnnotationError) as exc:
        return _error(str(exc))
    except (OSError, UnicodeError) as exc:
        return _error(f"--predictions {args.predictions}: cannot read it "
                      f"({getattr(exc, 'strerror', None) or exc})")
    for w in ds.warnings:
        _warn(w)
    if ds.invalid:
        _warn(f"{ds.rejected} invalid question(s) of {ds.file} not scored: "
              + "; ".join(str(x) for x in ds.invalid[:5])
              + (f" and {len(ds.invalid) - 5} more" if len(ds.invalid) > 5 else ""))
    if not ds.questions:
        return _error(f"{ds.file}: no question matches the filters {filters.as_dict()}")
    if scored.missing == len(ds.questions):
        for line in score_file.describe(scored)[1:]:
            err.print(line, markup=False, highlight=False, soft_wrap=True)
        return _error(f"{args.predictions}: none of its {scored.predictions_read} prediction(s) "
                      f"is for a selected question of {ds.file}")
    if args.json:
        print(json.dumps(scored.summary, indent=2))
    else:
        terminal.print_report(scored.summary)
    for line in score_file.describe(scored):
        err.print(line, markup=False, highlight=False, soft_wrap=True)
    return 0


def cmd_sample_data(args: argparse.Namespace) -> int:
    from evaluator.data import sample_data

    if args.format != "v2" and (args.full or args.mix is not None):
        return _error("--full and --mix apply to --format v2 only")
    if args.full and args.mix is not None:
        return _error("--full and --mix each set the question counts: give one")
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
        return _error(str(exc))
    except OSError as exc:
        return _error(f"--out {args.out}: cannot write the sample data ({exc.strerror or exc})")
    print(path)
    return 0


ANNOTATIONS_HELP = ("SEED-Bench-1, -2 or -2-Plus annotations: the JSON file, a parquet "
                    "snapshot's .parquet shard (a hub-cache link too) or a folder of shards")
BENCHMARK_HELP = ("SEED-Bench-1, SEED-Bench-2 or SEED-Bench-2-Plus (or v1, v2, v2plus): "
                  "overrides the detection from the file's fields")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="seedbench", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="evaluate a model server on an annotation file")
    r.add_argument("--annotations", required=True, help=ANNOTATIONS_HELP)
    r.add_argument("--benchmark", help=BENCHMARK_HELP)
    r.add_argument("--media-root", action="append", default=[], metavar="[KEY=]DIR",
                   help="media root per source: SEED-Bench-2 cc3m, 'SEED-Bench v2'; "
                        "SEED-Bench-2-Plus 'SEED-Bench v2 plus' (or bare: data_id is "
                        "text_rich/N.png); "
                        "SEED-Bench-1 image (dims 1-9), frames (the 8-frame folders, dims "
                        "10-12) or the raw videos ssv2, epic-kitchens, breakfast; a bare DIR "
                        "applies to every source (repeatable)")
    r.add_argument("--model", action="append", required=True, metavar="TARGET[,TARGET...]",
                   help="model server(s): HOST:PORT or any gRPC target (dns:///name:port)")
    r.add_argument("--out", required=True, help="output dir (results store, summary, submission)")
    r.add_argument("--level", choices=["L1", "L2", "L3"], help="cumulative: L2 = L1+L2")
    r.add_argument("--version", choices=["v1", "v2"], help="cumulative: v2 = v1+v2")
    r.add_argument("--subpart", help="exact subpart name, e.g. 'Video & Text Comprehension'")
    r.add_argument("--dimensions", help="comma-separated dimension ids, e.g. 1,5,23")
    r.add_argument("--method", choices=methods.METHODS, default="ppl",
                   help="ppl: rank the choice texts (Score); letter: options listed, letters "
                        "ranked (Score); generate: options listed, the model's greedy answer "
                        "parsed for its letter (Generate)")
    r.add_argument("--preset", choices=list(presets.PRESETS), default=presets.DEFAULT,
                   help="reference interface: prompt format, reduction, end token, image "
                        "placement (`seedbench presets` lists them)")
    r.add_argument("--limit", type=int, help="first N selected questions only")
    r.add_argument("--prices", metavar="FILE",
                   help="USD per 1M prompt/completion tokens per model name (JSON or .toml): "
                        '{"gpt-4o": {"prompt": 2.5, "completion": 10}}; the estimate goes '
                        "into run.json")
    r.add_argument("--max-cost", type=float, metavar="USD",
                   help="stop sending new questions once the estimated cost of this run "
                        "reaches USD (needs --prices); exit 3, rerun to resume")
    r.add_argument("--in-flight", type=int, default=0,
                   help="calls in flight (default: suggested_in_flight x replicas)")
    r.add_argument("--deadline-s", type=float, default=120.0, help="deadline of each call")
    r.add_argument("--retries", type=int, default=4,
                   help="retries of a call on UNAVAILABLE/DEADLINE_EXCEEDED")
    r.add_argument("--connect-timeout-s", type=float, default=10.0,
                   help="how long to wait for each replica's Info")
    r.add_argument("--clip", metavar="TARGET",
                   help="CLIP server (HOST:PORT or gRPC target) for L3, dims 25-27; they run "
                        "only with it and a model whose Info advertises generate_image")
    r.add_argument("--dry-run", action="store_true",
                   help="ask the servers' Info, print the plan (key, handler per dimension, "
                        "what cannot run and why) and stop: no question is sent, nothing written")
    r.add_argument("--json", action="store_true", help="with --dry-run: print the plan as JSON")
    r.add_argument("--outage-wait-s", type=float, default=180.0,
                   help="when every replica is unreachable, pause and wait this long for one "
                   "to come back before failing the remaining questions (0: no waiting)")
    add_client_args(r)
    r.set_defaults(func=cmd_run)

    rep = sub.add_parser("report", help="print the tables of a finished or partial run")
    rep.add_argument("dir", help="a run's --out folder (it holds results.sqlite)")
    rep.add_argument("--json", action="store_true", help="print the summary as JSON")
    rep.add_argument("--html", metavar="OUT.html", help="also write a self-contained HTML page")
    rep.add_argument("--png", metavar="DIR", help="also write heatmap.png and bars.png "
                     "(needs matplotlib: pip install 'seedbench-platform[reports]')")
    rep.set_defaults(func=cmd_report)

    pr = sub.add_parser("presets", help="list the reference-interface presets and the "
                                        "published rows each is meant to reproduce")
    pr.add_argument("--json", action="store_true", help="print them as JSON")
    pr.set_defaults(func=cmd_presets)
    cmp = sub.add_parser("compare", help="runs side by side, with paired tests and published rows")
    cmp.add_argument("dirs", nargs="+", metavar="RUN_DIR", help="runs' --out folders")
    cmp.add_argument("--reference", metavar="NAME",
                     help="put each run beside a published row (evaluator/references.json): "
                          + ", ".join(sorted(_reference_names())))
    cmp.add_argument("--json", action="store_true", help="print the comparison as JSON")
    cmp.add_argument("--html", metavar="OUT.html", help="also write a self-contained HTML page")
    cmp.add_argument("--png", metavar="DIR", help="also write heatmap.png and bars.png "
                     "(needs matplotlib: pip install 'seedbench-platform[reports]')")
    cmp.set_defaults(func=cmd_compare)

    sc = sub.add_parser("score", help="score a predictions file (a submission.jsonl or a "
                                      "published result file) against an annotation file")
    sc.add_argument("--annotations", required=True, help=ANNOTATIONS_HELP)
    sc.add_argument("--benchmark", help=BENCHMARK_HELP)
    sc.add_argument("--predictions", required=True, metavar="FILE",
                    help='{"question_id": ..., "prediction": "A"} per line; read tolerantly '
                         "(lines ending '},', extra keys, repeated ids: the last wins, or one "
                         "JSON array)")
    sc.add_argument("--level", choices=["L1", "L2", "L3"], help="cumulative: L2 = L1+L2")
    sc.add_argument("--version", choices=["v1", "v2"], help="cumulative: v2 = v1+v2")
    sc.add_argument("--subpart", help="exact subpart name, e.g. 'Video & Text Comprehension'")
    sc.add_argument("--dimensions", help="comma-separated dimension ids, e.g. 1,5,23")
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
    return p


def _reference_names() -> list[str]:
    from evaluator.reports import compare

    return list(compare.references())


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except BrokenPipeError:
        # The reader left early (`seedbench report RUN --json | head -1`): end quietly,
        # and keep the interpreter's final flush from complaining too.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
