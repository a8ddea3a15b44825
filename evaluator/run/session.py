"""One evaluation from a RunConfig: load the questions, connect, plan, answer, record.

This is the library's core: `evaluator.evaluate` / `evaluate_async` / `plan` call
it, and so do the command line, the demo, the bench and the tests. What a run
has to say while it runs (warnings, the progress of the questions) goes to a
Reporter: the CLI prints it, a library caller gets it logged (and the warnings
again in RunResult.warnings). A run that cannot start or go on raises RunFailed
with one line naming the cause; answers already committed are never lost.
"""

from __future__ import annotations

import asyncio
import json
import logging
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass

from evaluator.data import dataset
from evaluator.data.digests import FileDigests
from evaluator.data.video_frames import FrameCache
from evaluator.results import runkey
from evaluator.results import summary as summaries
from evaluator.results.run_record import RunRecord
from evaluator.results.run_result import RunResult
from evaluator.results.store import Store, StoreError
from evaluator.run import cost, handlers, l3, plan, runner
from evaluator.run.client import FingerprintMismatch, ModelPool, NoEndpoints, OutageWait, RetryPolicy
from evaluator.run.clip_client import ClipClient, ClipUnavailable, clip_record
from evaluator.run.config import RunConfig
from serving.atomic_files import atomic_open

log = logging.getLogger("evaluator")
FRAME_CACHE = "frame-cache"  # under out: sampled frames of raw videos (evaluator.data.video_frames)
INVALID_FILE = "invalid.jsonl"
# What ends a run before or between questions, each with a one-line message.
FAILURES = (dataset.AnnotationError, FingerprintMismatch, NoEndpoints, ClipUnavailable,
            plan.PlanError, cost.PriceError, StoreError)


class RunFailed(Exception):
    """The run could not start or go on; the message is one line naming the cause (the
    original exception is its __cause__)."""


class Reporter:
    """Where a run's messages go as they happen. This one logs them (logger "evaluator");
    the command line prints them. `progress` (a runner.Progress) follows the questions."""

    progress: runner.Progress | None = None

    def warn(self, text: str) -> None:
        log.warning("%s", text)

    def info(self, text: str) -> None:
        log.info("%s", text)


class _Collecting(Reporter):
    """Passes everything on and keeps the warnings for the RunResult."""

    def __init__(self, inner: Reporter):
        self.inner = inner
        self.progress = inner.progress
        self.warnings: list[str] = []

    def warn(self, text: str) -> None:
        self.warnings.append(text)
        self.inner.warn(text)

    def info(self, text: str) -> None:
        self.inner.info(text)


def load_dataset(config: RunConfig, reporter: Reporter, write_invalid: bool) -> dataset.Dataset:
    """The selected, valid questions; the invalid ones are reported (and listed in
    out/invalid.jsonl when `write_invalid`)."""
    try:
        ds = dataset.load(config.annotations, config.media_roots, config.filters,
                          config.benchmark)
    except dataset.AnnotationError as exc:
        raise RunFailed(str(exc)) from exc
    for w in ds.warnings:
        reporter.warn(w)
    preset = config.preset_spec
    if preset.name not in ds.definition.presets:
        reporter.warn(f"preset {preset.name} follows {preset.interface}, which was not written "
                      f"for {ds.benchmark}; its presets: {', '.join(ds.definition.presets)}")
    if write_invalid:
        try:
            config.out.mkdir(parents=True, exist_ok=True)
            with atomic_open(config.out / INVALID_FILE) as f:
                for bad in ds.invalid:
                    f.write(json.dumps(bad.as_dict()) + "\n")
        except OSError as exc:
            raise RunFailed(f"--out {config.out}: cannot write the output folder "
                            f"({exc.strerror or exc})") from exc
    if ds.invalid:
        where = f" (also in {config.out / INVALID_FILE})" if write_invalid else ""
        reporter.warn(f"{ds.rejected} invalid question(s) skipped{where}:\n"
                      + "\n".join(f"  {bad}" for bad in ds.invalid))
    if not ds.questions:
        raise RunFailed(f"{ds.file}: no valid question selected ({ds.rejected} invalid, listed "
                        "above)" if ds.invalid else
                        f"{ds.file}: no question matches the filters {config.filters.as_dict()}")
    reporter.info(f"{ds.benchmark}: {len(ds.questions)} question(s) selected from {ds.file}")
    for dim, source in ds.video_sources.items():
        reporter.info(f"  video dimension {dim}: {source}")
    return ds


@dataclass
class Servers:
    """The connected model pool (and CLIP client) of a run."""

    pool: ModelPool
    info: object  # the model's InfoResponse
    clip: ClipClient | None = None


@asynccontextmanager
async def connected(config: RunConfig, reporter: Reporter):
    """Ask Info of every replica (and the CLIP server); always closes the channels."""
    pool = ModelPool(list(config.targets), deadline_s=config.deadline_s,
                     retry=RetryPolicy(attempts=config.retries + 1), security=config.security,
                     outage=OutageWait(config.outage_wait_s, report=reporter.warn))
    clip: ClipClient | None = None
    try:
        info = await pool.connect(info_timeout_s=config.connect_timeout_s)
        for ep in pool.endpoints:
            if ep.info is None:
                reporter.warn(f"{ep.target} left out: {ep.status}")
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


def make_plan(config: RunConfig, ds: dataset.Dataset, servers: Servers,
              reporter: Reporter) -> plan.RunPlan:
    clip = servers.clip
    p = plan.build(
        config, ds, servers.info, handlers.default_handlers(ds.definition),
        clip_record=clip_record(clip.info) if clip else None,
        l3_handlers=l3.L3Scorer(clip, config.out).handlers() if clip else None,
        suggested_in_flight=servers.pool.suggested_in_flight(),
        endpoints=[{"target": ep.target, "status": ep.status} for ep in servers.pool.endpoints])
    note = l3.missing_note(True, servers.info.capabilities.generate_image, servers.info.name)
    if clip is not None and p.key.clip == "" and note:
        reporter.warn(note)
    return p


async def plan_async(config: RunConfig, reporter: Reporter | None = None) -> plan.RunPlan:
    """Load, connect (Info only) and plan; no question is sent and nothing is written."""
    reporter = reporter or Reporter()
    ds = load_dataset(config, reporter, write_invalid=False)
    try:
        async with connected(config, reporter) as servers:
            run_plan = make_plan(config, ds, servers, reporter)
            cost.budget_for(servers.info.name, config.prices, config.max_cost)  # a cap it can't keep
            return run_plan
    except FAILURES as exc:
        raise RunFailed(str(exc)) from exc


async def evaluate_async(config: RunConfig, reporter: Reporter | None = None) -> RunResult:
    """Connect, plan, record the run, answer what is missing, write the outputs."""
    reporter = _Collecting(reporter or Reporter())
    ds = load_dataset(config, reporter, write_invalid=True)
    try:
        return await _evaluate(config, ds, reporter)
    except FAILURES as exc:
        raise RunFailed(str(exc)) from exc


async def _evaluate(config: RunConfig, ds: dataset.Dataset, reporter: _Collecting) -> RunResult:
    async with connected(config, reporter) as servers:
        run_plan = make_plan(config, ds, servers, reporter)
        budget = cost.budget_for(servers.info.name, config.prices, config.max_cost)
        if config.prices is not None and budget.price is None:
            reporter.warn(f"--prices has no entry for the model {servers.info.name!r}: "
                          "no cost estimate for this run")
        store = Store(config.out)
        try:
            if change := runkey.model_change(store.meta("run"), run_plan.key):
                reporter.warn(change)
            store.set_selection(ds.questions, run_plan.unsupported(ds.questions))
            store.set_meta("run", run_plan.record)
            if ds.definition.subtype_field:
                store.set_meta(summaries.SUBTYPES, {q.question_id: q.subtype for q in ds.questions})
            video_frames = FrameCache(config.out / FRAME_CACHE)
            try:
                with ThreadPoolExecutor(4, thread_name_prefix="media") as media:
                    ctx = handlers.RunContext(
                        servers.pool, config.method, config.preset_spec, config.deadline_s,
                        media, video_frames,
                        stop_sending=lambda: budget.exhausted(servers.pool.endpoints),
                        digests=FileDigests(store.file_digests(), store.put_file_digest))
                    stats = await runner.run_questions(ds.questions, store, run_plan, ctx,
                                                       reporter.progress)
            finally:
                video_frames.close()
            summary = summaries.write_outputs(store, config.out)
        finally:
            store.close()
        # Run-specific facts (timings, per-replica calls) live apart from summary.json,
        # which must be identical however many times a run was interrupted.
        record = RunRecord.from_dict({
            "method": config.method, "preset": config.preset, "in_flight": run_plan.in_flight,
            "todo": stats.todo, "stale": stats.stale, "keying_s": round(stats.keying_s, 3),
            "media_hashed": ctx.digests.hashed, "answered": stats.answered, "errors": stats.errors,
            "elapsed_s": round(stats.elapsed_s, 3), "cpu_s": round(stats.cpu_s, 3),
            "throughput_qps": round(stats.answered / stats.elapsed_s, 2) if stats.elapsed_s
            else 0.0, "latency_ms": stats.latency_ms, "endpoints": stats.endpoints,
            "clip": servers.clip.stats() if servers.clip else None,
            "video_sources": ds.video_sources, "videos_decoded": video_frames.decoded,
            "outage_wait": {"outages": servers.pool.outage.outages,
                            "waited_s": round(servers.pool.outage.waited_s, 1)},
            "usage": budget.record(servers.pool.endpoints), "stopped": stats.stopped,
            "provenance": run_plan.record["provenance"]})
    summaries.write_run(config.out, record)
    return RunResult(config.out, summary, record, tuple(reporter.warnings))


def _blocking(coro):
    """Run a coroutine to completion from synchronous code, also where an event loop is
    already running (a notebook): then in a thread of its own."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with ThreadPoolExecutor(1, thread_name_prefix="evaluate") as pool:
        return pool.submit(asyncio.run, coro).result()


def evaluate(config: RunConfig, reporter: Reporter | None = None) -> RunResult:
    """`evaluate_async`, blocking until the run is done."""
    return _blocking(evaluate_async(config, reporter))


def plan_run(config: RunConfig, reporter: Reporter | None = None) -> plan.RunPlan:
    """`plan_async`, blocking."""
    return _blocking(plan_async(config, reporter))
