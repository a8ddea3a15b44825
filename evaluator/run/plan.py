"""What a run will do, decided before any question is sent: a plain value that prints.

Built from the run's configuration, the selected questions and what the
servers said in Info: the store key, the handler answering each dimension,
the dimensions that cannot run and why, and the in-flight window. The runner
follows it; `seedbench run --dry-run` prints it and stops.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

from evaluator.data import provenance
from evaluator.data.dataset import Dataset, Question
from evaluator.results.runkey import RunKey
from evaluator.run import l3
from evaluator.run.config import RunConfig
from evaluator.run.handlers import Handler
from evaluator.run.methods import METHODS
from evaluator.run.presets import PRESETS, Preset
from protos.wire import DETAIL_SCORE_END_OF_TURN, DETAIL_SCORE_RAW_PROMPT, REFUSED


@dataclass(frozen=True)
class DimensionPlan:
    dimension: int
    name: str
    questions: int  # selected questions of this dimension
    handler: str | None  # the handler's name, None when it cannot run
    unsupported: str | None = None  # why it cannot run

    def as_dict(self) -> dict:
        return {"dimension": self.dimension, "name": self.name, "questions": self.questions,
                "handler": self.handler, "unsupported": self.unsupported}


@dataclass(frozen=True)
class RunPlan:
    key: RunKey
    record: dict  # the run's settings as stored (meta `run`) and reported in summary.json
    dimensions: tuple[DimensionPlan, ...]
    in_flight: int
    endpoints: tuple[dict, ...]  # {target, status} per replica
    handlers: Mapping[int, Handler] = field(repr=False, compare=False, default_factory=dict)

    def handler(self, q: Question) -> Handler | None:
        return self.handlers.get(q.dimension)

    def unsupported(self, questions: list[Question]) -> dict[str, str]:
        """question_id -> why it is not run, for the selected questions without a handler."""
        why = {d.dimension: d.unsupported for d in self.dimensions if d.unsupported}
        return {q.question_id: why[q.dimension] for q in questions if q.dimension in why}

    def as_dict(self) -> dict:
        return {
            "benchmark": self.record["benchmark"], "annotations": self.record["annotations"],
            "model": self.record["model"], "clip": self.record["clip"],
            "method": self.record["method"], "preset": self.record["preset"],
            "include_end_of_turn": self.record["include_end_of_turn"],
            "filters": self.record["filters"], "skipped_invalid": self.record["skipped_invalid"],
            "key": self.key.to_dict(), "provenance": self.record["provenance"],
            "in_flight": self.in_flight,
            "endpoints": list(self.endpoints),
            "questions": sum(d.questions for d in self.dimensions),
            "runnable": sum(d.questions for d in self.dimensions if d.handler),
            "dimensions": [d.as_dict() for d in self.dimensions],
        }

    @property
    def title(self) -> str:
        m = self.record["model"]
        return (f"plan: {self.record['benchmark']} - {m['name']} ({m['fingerprint']}) - "
                f"method {self.key.method}, preset {self.key.preset} - in flight {self.in_flight}")

    def __str__(self) -> str:
        """The plan as plain text: a heading, then one line per dimension."""
        lines = [self.title]
        for d in self.dimensions:
            runs = f"by {d.handler}" if d.handler else f"NOT RUN: {d.unsupported}"
            lines.append(f"  {d.dimension:>2} {d.name}: {d.questions} question(s), {runs}")
        return "\n".join(lines)


class PlanError(Exception):
    """The run cannot do what was asked (e.g. a method the model cannot do); nothing was sent."""


# What each method asks of the model: the Info capability it needs, and whether
# any option text can be scored (a letter-only scorer ranks just "A".."D").
METHOD_NEEDS = {
    "ppl": ("score", True), "letter": ("score", False),
    "generate": ("generate", False),
}


def letters_only(info) -> bool:
    """A scorer that ranks single letters only (a chat API's first-token log-probabilities)."""
    return info.details.get("score_mode") == "chat-letter"


def method_refusal(method: str, info) -> str | None:
    """Why the model cannot answer with `method` (and what would work), or None if it can."""
    def can(m: str) -> bool:
        cap, any_text = METHOD_NEEDS.get(m, ("score", True))
        return getattr(info.capabilities, cap) and not (any_text and letters_only(info))

    if can(method):
        return None
    cap, any_text = METHOD_NEEDS.get(method, ("score", True))
    name = info.name or "the model"
    if not getattr(info.capabilities, cap):
        why = f"{name} ({info.backend}) does not advertise {cap} in its Info"
    else:
        why = (f"{name} ({info.backend}) scores single letters only "
               f"(score_mode={info.details.get('score_mode')}), not option texts")
    works = [m for m in METHODS if can(m)]
    hint = (f"; use --method {' or '.join(works)}" if works
            else "; no method of this evaluator works with it")
    return f"--method {method} cannot run: {why}{hint}"


SCORE_METHODS = frozenset(m for m, (cap, _) in METHOD_NEEDS.items() if cap == "score")


def _score_refuses(info, key: str) -> str | None:
    """The server's reason (Info.details) for refusing a Score request field, or None."""
    value = info.details.get(key, "")
    return value.split(":", 1)[-1].strip() if value.startswith(REFUSED) else None


def preset_refusal(method: str, preset: Preset, info) -> str | None:
    """Why the model's Score cannot take this preset's requests (an end-of-turn token or a
    raw prompt), with the presets and methods that would work; None if it can.

    Asked before the run, so a remote chat model refuses the run once instead of
    failing every question with the same INVALID_ARGUMENT.
    """
    if method not in SCORE_METHODS:
        return None  # Generate sends no end-of-turn or raw flag (a raw preset: methods.refusal)

    def blocker(p: Preset) -> str | None:
        if p.end_token and (why := _score_refuses(info, DETAIL_SCORE_END_OF_TURN)):
            return f"scores the end-of-turn token after each option, and {why}"
        if p.raw and (why := _score_refuses(info, DETAIL_SCORE_RAW_PROMPT)):
            return f"sends a raw prompt, and {why}"
        if p.letter_suffix and letters_only(info):
            return (f"scores each letter with {p.letter_suffix!r} after it, and this model "
                    f"ranks single letters only (score_mode=chat-letter)")
        return None

    why = blocker(preset)
    if why is None:
        return None
    works = [name for name, p in PRESETS.items() if blocker(p) is None]
    name = info.name or "the model"
    hint = (f"use --preset {' or '.join(works)}" if works else "no preset works with it")
    generate_allowed = not preset.methods or "generate" in preset.methods
    if method_refusal("generate", info) is None and not preset.raw and generate_allowed:
        hint += ", or --method generate"
    return (f"--preset {preset.name} cannot run on {name} ({info.backend}): the preset "
            f"{why}; {hint}")


def model_record(info) -> dict:
    return {"name": info.name, "fingerprint": info.fingerprint, "backend": info.backend,
            "details": dict(sorted(info.details.items()))}


def handler_name(h: Handler) -> str:
    return getattr(h, "__qualname__", None) or type(h).__name__


def build(config: RunConfig, ds: Dataset, info, handlers: Mapping[int, Handler], *,
          clip_record: dict | None, l3_handlers: Mapping[int, Handler] | None,
          suggested_in_flight: int, endpoints: list[dict] | None = None) -> RunPlan:
    """The plan for `ds` against a model with Info `info`; PlanError if it cannot run.

    `handlers` answer the dimensions chosen by option ranking (handlers.default_handlers);
    `l3_handlers` is what a connected CLIP server offers for the benchmark's generation
    dims (SEED-Bench-2's 25-27), used only when the model can generate images (else
    those dims are unsupported with the reason).
    """
    refusal = method_refusal(config.method, info) or preset_refusal(config.method,
                                                                    config.preset_spec, info)
    if refusal is not None:
        raise PlanError(refusal)
    bench = ds.definition
    l3_note = l3.missing_note(l3_handlers is not None, info.capabilities.generate_image,
                              info.name)
    chosen = dict(handlers)
    clip_used = None
    if l3_note is None and bench.generation_dims:  # CLIP is part of the key only where used
        clip_used = clip_record
        for d, h in l3_handlers.items():
            chosen.setdefault(d, h)
    key = RunKey(info.fingerprint, config.method, config.include_eot,
                 clip_used["fingerprint"] if clip_used else "", config.preset,
                 bench.generation_dims)
    per_dim = Counter(q.dimension for q in ds.questions)
    names = bench.dimensions
    dims = []
    for d in sorted(per_dim):
        h = chosen.get(d)
        why = None
        if h is None:
            why = l3_note if d in bench.generation_dims else f"no handler for dimension {d}"
        dims.append(DimensionPlan(d, names.get(d, f"dimension {d}"), per_dim[d],
                                  handler_name(h) if h else None, why))
    if dims and not any(d.handler for d in dims):
        reasons = sorted({d.unsupported for d in dims})
        raise PlanError(f"none of the {len(ds.questions)} selected question(s) can run: "
                        + "; ".join(reasons))
    record = {
        "benchmark": ds.benchmark, "annotations": ds.file, "model": model_record(info),
        "method": config.method, "preset": config.preset_spec.record(),
        "include_end_of_turn": config.include_eot,
        "filters": config.filters.as_dict(), "skipped_invalid": ds.rejected,
        "clip": clip_used, "key": key.to_dict(),
        "provenance": provenance.record(ds, config.media_roots, model_record(info), config.method,
                                        config.preset, clip_used),
    }
    return RunPlan(key=key, record=record, dimensions=tuple(dims),
                   in_flight=config.in_flight or suggested_in_flight,
                   endpoints=tuple(endpoints or ()),
                   handlers={d: h for d, h in chosen.items() if d in per_dim})
