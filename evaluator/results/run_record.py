"""The typed record of one invocation (run.json) and the run's provenance.

run.json holds what changes from one invocation to the next (timings, the
replicas' shares, API usage, why it stopped); summary.json never does, so a
resumed run's summary is identical to an uninterrupted one. Both are file
formats users' scripts parse: `to_dict` keeps every key they have always had,
and `from_dict` reads files written by older versions (absent keys get
defaults).

Provenance (where the questions, media and model came from) is recorded with
the run in its results store; old stores have none, so it is optional.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Latency:
    """Nearest-rank percentiles of call latency, in milliseconds."""

    p50: float
    p90: float
    p99: float

    @classmethod
    def from_dict(cls, d: dict | None) -> Latency | None:
        if not d:
            return None
        return cls(float(d.get("p50", 0.0)), float(d.get("p90", 0.0)), float(d.get("p99", 0.0)))

    def to_dict(self) -> dict:
        return {"p50": self.p50, "p90": self.p90, "p99": self.p99}


def _latency_dict(x: Latency | None) -> dict:
    return {} if x is None else x.to_dict()


@dataclass(frozen=True)
class EndpointStats:
    """One model replica: its state and how many calls it took."""

    target: str
    status: str
    calls: int
    ok: int
    failures: int
    latency: Latency | None = None
    upstream: dict[str, int] | None = None  # a remote model's requests and tokens

    @classmethod
    def from_dict(cls, d: dict) -> EndpointStats:
        return cls(str(d.get("target", "")), str(d.get("status", "")), int(d.get("calls", 0)),
                   int(d.get("ok", 0)), int(d.get("failures", 0)),
                   Latency.from_dict(d.get("latency_ms")), d.get("upstream"))

    def to_dict(self) -> dict:
        out = {"target": self.target, "status": self.status, "calls": self.calls, "ok": self.ok,
               "failures": self.failures, "latency_ms": _latency_dict(self.latency)}
        if self.upstream is not None:
            out["upstream"] = dict(self.upstream)
        return out


@dataclass(frozen=True)
class ClipStats:
    target: str
    calls: int
    ok: int
    failures: int

    @classmethod
    def from_dict(cls, d: dict | None) -> ClipStats | None:
        if not d:
            return None
        return cls(str(d.get("target", "")), int(d.get("calls", 0)), int(d.get("ok", 0)),
                   int(d.get("failures", 0)))

    def to_dict(self) -> dict:
        return {"target": self.target, "calls": self.calls, "ok": self.ok,
                "failures": self.failures}


@dataclass(frozen=True)
class Usage:
    """What this invocation's calls cost a remote API (all zero for a local model)."""

    requests: int = 0
    retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    model: str = ""
    price_usd_per_1m: dict | None = None  # {"prompt": USD, "completion": USD}
    cost_usd: float | None = None
    max_cost_usd: float | None = None

    @classmethod
    def from_dict(cls, d: dict | None) -> Usage | None:
        if d is None:
            return None
        return cls(int(d.get("requests", 0)), int(d.get("retries", 0)),
                   int(d.get("prompt_tokens", 0)), int(d.get("completion_tokens", 0)),
                   str(d.get("model", "")), d.get("price_usd_per_1m"), d.get("cost_usd"),
                   d.get("max_cost_usd"))

    def to_dict(self) -> dict:
        return {"requests": self.requests, "retries": self.retries,
                "prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "model": self.model, "price_usd_per_1m": self.price_usd_per_1m,
                "cost_usd": self.cost_usd, "max_cost_usd": self.max_cost_usd}


@dataclass(frozen=True)
class RunRecord:
    """run.json: the last invocation's timings, replicas, usage and why it stopped."""

    method: str
    preset: str | None
    in_flight: int
    todo: int  # questions this invocation set out to answer
    stale: int  # of which had an answer stored for an earlier version of the question
    keying_s: float  # time spent finding which stored answers still hold
    media_hashed: int  # media files read to (re)compute their sha256
    answered: int
    errors: int
    elapsed_s: float
    cpu_s: float  # the evaluator's own CPU time while answering
    throughput_qps: float
    latency: Latency | None
    endpoints: tuple[EndpointStats, ...]
    clip: ClipStats | None
    video_sources: dict[int, str]
    videos_decoded: int
    outages: int
    outage_waited_s: float
    usage: Usage | None
    stopped: str | None  # why no new question was sent (the cost cap), None when it ran out
    provenance: Provenance | None = None

    @classmethod
    def from_dict(cls, d: dict) -> RunRecord:
        outage = d.get("outage_wait") or {}
        return cls(
            method=str(d.get("method", "")), preset=d.get("preset"),
            in_flight=int(d.get("in_flight", 0)), todo=int(d.get("todo", 0)),
            stale=int(d.get("stale", 0)), keying_s=float(d.get("keying_s", 0.0)),
            media_hashed=int(d.get("media_hashed", 0)),
            answered=int(d.get("answered", 0)), errors=int(d.get("errors", 0)),
            elapsed_s=float(d.get("elapsed_s", 0.0)), cpu_s=float(d.get("cpu_s", 0.0)),
            throughput_qps=float(d.get("throughput_qps", 0.0)),
            latency=Latency.from_dict(d.get("latency_ms")),
            endpoints=tuple(EndpointStats.from_dict(e) for e in d.get("endpoints") or ()),
            clip=ClipStats.from_dict(d.get("clip")),
            video_sources={int(k): str(v) for k, v in (d.get("video_sources") or {}).items()},
            videos_decoded=int(d.get("videos_decoded", 0)),
            outages=int(outage.get("outages", 0)),
            outage_waited_s=float(outage.get("waited_s", 0.0)),
            usage=Usage.from_dict(d.get("usage")), stopped=d.get("stopped"),
            provenance=Provenance.from_dict(d.get("provenance")))

    def to_dict(self) -> dict:
        return {"method": self.method, "preset": self.preset, "in_flight": self.in_flight,
                "todo": self.todo, "stale": self.stale, "keying_s": self.keying_s,
                "media_hashed": self.media_hashed, "answered": self.answered, "errors": self.errors,
                "elapsed_s": self.elapsed_s, "cpu_s": self.cpu_s,
                "throughput_qps": self.throughput_qps, "latency_ms": _latency_dict(self.latency),
                "endpoints": [e.to_dict() for e in self.endpoints],
                "clip": None if self.clip is None else self.clip.to_dict(),
                "video_sources": {str(k): v for k, v in self.video_sources.items()},
                "videos_decoded": self.videos_decoded,
                "outage_wait": {"outages": self.outages, "waited_s": self.outage_waited_s},
                "usage": None if self.usage is None else self.usage.to_dict(),
                "stopped": self.stopped,
                "provenance": None if self.provenance is None else self.provenance.to_dict()}


# -- provenance -----------------------------------------------------------------------------------

def _first(d: dict, *keys):
    for k in keys:
        if k in d and d[k] is not None:
            return d[k]
    return None


@dataclass(frozen=True)
class AnnotationProvenance:
    path: str | None = None
    sha256: str | None = None
    questions: int | None = None
    benchmark: str | None = None
    version: str | None = None
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class Provenance:
    """Where a run's inputs came from: the annotation file (path, digest, count), media roots,
    the model's fingerprint, method, preset and CLIP model.

    Read tolerantly from the recorded dict (`raw`, kept whole for summary.json and for
    fields this version does not know); `items()` lists every recorded field for display.
    """

    annotations: AnnotationProvenance | None = None
    media_roots: dict[str, str] = field(default_factory=dict)
    model_fingerprint: str | None = None
    method: str | None = None
    preset: str | None = None
    clip: str | None = None
    raw: dict = field(default_factory=dict, repr=False)

    @classmethod
    def from_dict(cls, d: dict | None) -> Provenance | None:
        if not isinstance(d, dict) or not d:
            return None
        ann = _first(d, "annotations", "annotation")
        annotations = None
        if isinstance(ann, dict):
            count = _first(ann, "questions", "count")
            annotations = AnnotationProvenance(
                path=_first(ann, "path", "file"), sha256=ann.get("sha256"),
                questions=count if isinstance(count, int) else None,
                benchmark=ann.get("benchmark"), version=ann.get("version"),
                warnings=tuple(map(str, ann.get("warnings") or ())))
        elif isinstance(ann, str):
            annotations = AnnotationProvenance(path=ann)
        model = d.get("model")
        fingerprint = (model.get("fingerprint") if isinstance(model, dict)
                       else _first(d, "model_fingerprint", "fingerprint"))
        preset, clip = d.get("preset"), d.get("clip")
        return cls(annotations=annotations,
                   media_roots={str(k): str(v) for k, v in (d.get("media_roots") or {}).items()},
                   model_fingerprint=fingerprint, method=d.get("method"),
                   preset=preset.get("name") if isinstance(preset, dict) else preset,
                   clip=clip.get("fingerprint") if isinstance(clip, dict) else clip, raw=dict(d))

    def to_dict(self) -> dict:
        return dict(self.raw)

    def items(self) -> Iterator[tuple[str, str]]:
        """(dotted field name, value as text) for every recorded field, in recorded order."""
        def walk(prefix: str, value) -> Iterator[tuple[str, str]]:
            if prefix.endswith("question_type") and isinstance(value, dict):
                yield prefix, f"the file's own map of {len(value)} names (in summary.json)"
            elif prefix.endswith(".shards") and isinstance(value, list) and value:
                size = sum(s.get("bytes", 0) for s in value if isinstance(s, dict))
                names = [str(s.get("name")) for s in value if isinstance(s, dict)]
                yield prefix, (f"{len(value)} parquet shard(s), {size:,} bytes: {names[0]} .. "
                               f"{names[-1]} (each one's size, rows and footer sha256 in "
                               "summary.json)")
            elif isinstance(value, dict) and value:
                for k, v in value.items():
                    yield from walk(f"{prefix}.{k}" if prefix else str(k), v)
            elif isinstance(value, list | tuple):
                yield prefix, ", ".join(map(str, value)) if value else "none"
            else:
                yield prefix, "none" if value is None else str(value)

        yield from walk("", self.raw)
