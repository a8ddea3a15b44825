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
from evaluator.run import l3, methods
from evaluator.run.config import RunConfig
from evaluator.run.handlers import Handler
from evaluator.run.methods import METHODS
from evaluator.run.presets import PRESETS, Preset
from protos.wire import score_features


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
    return not score_features(info).option_texts


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
               "(capabilities.score_features.option_texts is false), not option texts")
    works = [m for m in METHODS if can(m)]
    hint = (f"; use --method {' or '.join(works)}" if works
            else "; no method of this evaluator works with it")
    return f"--method {method} cannot run: {why}{hint}"


SCORE_METHODS = frozenset(m for m, (cap, _) in METHOD_NEEDS.items() if cap == "score")


def _reason(features, wire_field: str) -> str:
    """The server's own words on a feature it lacks, if it gave any."""
    why = next((u.reason for u in features.unsupported if u.feature == wire_field), "")
    return f" ({why})" if why else ""


def preset_needs(preset: Preset, features) -> list[str]:
    """What the preset's Score requests need that the server's typed features lack."""
    lacks = []
    if preset.end_token and not features.end_of_turn:
        lacks.append("scoring the end-of-turn token after each option (include_end_of_turn)"
                     + _reason(features, "include_end_of_turn"))
    if preset.raw and not features.raw_prompt:
        lacks.append("a raw prompt (raw_prompt)" + _reason(features, "raw_prompt"))
    if preset.letter_suffix and not features.option_texts:
        lacks.append(f"scoring each letter with {preset.letter_suffix!r} after it (this model "
                     "ranks single letters only)")
    if not preset.raw:
        checks = []
    else:
        checks = [("scoring_window", methods.WINDOW[preset.window], features.scoring_windows,
                   f"the {preset.window} scoring window"),
                  ("image_text", methods.IMAGE_TEXT[preset.image_text], features.image_texts,
                   f"images written as the {preset.image_text}"),
                  ("tokenization", methods.TOKENIZATION[preset.tokenization],
                   features.tokenizations, f"{preset.tokenization} tokenisation")]
    checks.append(("image_preprocessing", methods.PREPROCESSING[preset.preprocessing.mode],
                   features.image_preprocessing, f"{preset.preprocessing.mode} image preprocessing"))
    for wire_field, value, offered, what in checks:
        if value not in offered:
            lacks.append(f"{what} ({wire_field})" + _reason(features, wire_field))
    if preset.raw and preset.affix_fields and not features.option_affixes:
        lacks.append("option affixes (option_prefix, option_suffix)"
                     + _reason(features, "option_prefix"))
    return lacks


def preset_refusal(method: str, preset: Preset, info) -> str | None:
    """Why the model's Score cannot take this preset's requests, naming every typed feature
    it lacks, with the presets and methods that would work; None if it can.

    Asked before the run from Info's typed capabilities alone, so a server that cannot do
    a reference interface's recipe refuses the run once, before any question is sent.
    """
    if method not in SCORE_METHODS:
        return None  # Generate sends none of these fields (a raw preset: methods.refusal)
    features = score_features(info)
    lacks = preset_needs(preset, features)
    if not lacks:
        return None
    works = [name for name, p in PRESETS.items() if not preset_needs(p, features)
             and (not p.methods or method in p.methods)]
    name = info.name or "the model"
    hint = (f"use --preset {' or '.join(works)}" if works else "no preset works with it")
    generate_allowed = not preset.methods or "generate" in preset.methods
    if method_refusal("generate", info) is None and not preset.raw and generate_allowed:
        hint += ", or --method generate"
    return (f"--preset {preset.name} cannot run on {name} ({info.backend}): it needs "
            + "; ".join(lacks) + f", which this server does not offer; {hint}")


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
