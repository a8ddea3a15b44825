"""The settings of one evaluation: declared once, converted and validated once.

`RunConfig` is the public configuration (`from evaluator import RunConfig`):
keyword arguments named like the command line's flags. It is checked when it
is built, and a bad value raises ConfigError naming the field; the command line
builds the same object (`RunConfig.from_args`) and shows the field as its
--flag. Everything downstream (connecting, planning, running, recording) reads
this frozen object; nothing adds settings to it later.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from evaluator.data import benchmarks as B
from evaluator.data.dataset import Filters
from evaluator.data.media import parse_media_roots
from evaluator.run import cost, methods, presets
from evaluator.run.presets import Preset
from serving.security import ClientSecurity, SecurityError

# --level / --version: every benchmark's filter vocabulary (SEED-Bench-2's alone today).
LEVELS = tuple(dict.fromkeys(k for b in B.BENCHMARKS.values() for k in b.levels))
VERSIONS = tuple(dict.fromkeys(k for b in B.BENCHMARKS.values() for k in b.versions))


class Opt(str):
    """A field's name inside an error message: shown as the field (API) or its --flag (CLI)."""


def flag(name: str) -> str:
    """The command-line option of a RunConfig field."""
    return {"media_roots": "--media-root"}.get(name, "--" + name.replace("_", "-"))


class ConfigError(ValueError):
    """A setting that cannot be used. `field` names it; `str()` speaks of fields,
    `message(flag)` of command-line options. Parts that are data (paths, values) are never
    reinterpreted."""

    def __init__(self, field_name: str, *parts: str):
        self.field = field_name
        self.parts = parts
        super().__init__(self.message())

    def message(self, name: Callable[[str], str] = str) -> str:
        return "".join(name(p) if isinstance(p, Opt) else p for p in self.parts)


def _bad(name: str, rest: str) -> ConfigError:
    """The common shape: '<field> <rest>'."""
    return ConfigError(name, Opt(name), rest)


def _number(name: str, value, kind=float):
    if isinstance(value, bool) or not isinstance(value, int | float) or (
            kind is int and not isinstance(value, int)):
        raise _bad(name, f" must be {'an integer' if kind is int else 'a number'}, got {value!r}")
    return value


@dataclass(frozen=True)
class RunConfig:
    """One evaluation's settings (the fields are `seedbench run`'s flags).

    annotations: the SEED-Bench-1, -2 or -2-Plus annotations (the JSON file, a parquet
    snapshot's shard or a folder of shards); model: gRPC target(s) of the model
    server's replicas ("HOST:PORT", a list, or comma-separated); out: the output folder
    (results store, summary.json, ...); media_roots: source -> folder ("cc3m",
    "SEED-Bench v2", "image", ...; the key "" is a root for every source).
    """

    annotations: str | Path
    model: str | Iterable[str]
    out: str | Path
    media_roots: Mapping[str, str | Path] = field(default_factory=dict, hash=False)
    level: str | None = None  # cumulative: L2 = L1 + L2
    version: str | None = None  # cumulative: v2 = v1 + v2
    subpart: str | None = None  # a SEED-Bench-2 subpart's exact name
    dimensions: Iterable[int] | str | None = None  # ids, or "1,5,23"
    limit: int | None = None  # the first N selected questions only
    method: str = "ppl"  # ppl | letter | generate
    preset: str = presets.DEFAULT  # a name from `seedbench presets`
    clip: str | None = None  # the CLIP server's target (L3, dims 25-27)
    in_flight: int = 0  # calls in flight; 0: the replicas' suggestion
    deadline_s: float = 120.0
    retries: int = 4  # retries of a call on UNAVAILABLE / DEADLINE_EXCEEDED
    connect_timeout_s: float = 10.0
    outage_wait_s: float = 180.0  # how long to wait out an outage of every replica
    prices: str | Path | Mapping | None = field(default=None, hash=False)  # file or table
    max_cost: float | None = None  # USD; stop sending new questions once reached
    tls_ca: str | Path | None = None
    tls_cert: str | Path | None = None
    tls_key: str | Path | None = None
    auth_token_file: str | Path | None = None  # else $SEEDBENCH_AUTH_TOKEN
    benchmark: str | None = None  # a benchmark's name or alias: overrides the detection
    security: ClientSecurity = field(init=False, hash=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        put = object.__setattr__
        put(self, "annotations", Path(self.annotations))
        put(self, "out", Path(self.out))
        put(self, "model", targets(self.model))
        put(self, "dimensions", dimensions(self.dimensions))
        put(self, "media_roots", _media_roots(self.media_roots))
        put(self, "benchmark", benchmark(self.benchmark))
        for name, choices in (("level", LEVELS), ("version", VERSIONS)):
            value = getattr(self, name)
            if value is not None and value not in choices:
                raise _bad(name, f" must be one of {', '.join(choices)}, got {value!r}")
        subpart(self.subpart)
        for name in ("in_flight", "retries", "limit"):
            value = getattr(self, name)
            if value is not None and _number(name, value, int) < 0:
                hint = " (automatic)" if name == "in_flight" else ""
                raise _bad(name, f" must be 0{hint} or more, got {value}")
        if self.preset not in presets.PRESETS:
            raise ConfigError("preset", Opt("preset"), f": unknown preset {self.preset!r}; "
                              f"choose from {', '.join(presets.PRESETS)}")
        why = methods.refusal(self.method, self.preset_spec)
        if why:
            raise ConfigError("method", why)
        for name in ("deadline_s", "connect_timeout_s"):
            if not _number(name, getattr(self, name)) > 0:
                raise _bad(name, " must be a positive number of seconds")
        if _number("outage_wait_s", self.outage_wait_s) < 0:
            raise _bad("outage_wait_s", " must be 0 (no waiting) or more seconds")
        self._check_cost()
        if self.out.exists() and not self.out.is_dir():
            raise ConfigError("out", Opt("out"), f" {self.out}: exists and is not a folder")
        self._check_security()

    def _check_cost(self) -> None:
        prices = self.prices
        if prices is not None and not isinstance(prices, Mapping):
            try:
                prices = cost.load_prices(Path(prices))
            except cost.PriceError as exc:
                raise ConfigError("prices", str(exc)) from None
        elif prices is not None:
            prices = {str(k): v if isinstance(v, cost.Price) else cost.Price(
                float(v["prompt"]), float(v["completion"])) for k, v in prices.items()}
        object.__setattr__(self, "prices", prices)
        if self.max_cost is not None and not _number("max_cost", self.max_cost) > 0:
            raise _bad("max_cost", f" must be a positive number of USD, got {self.max_cost:g}")
        if self.max_cost is not None and prices is None:
            raise ConfigError("max_cost", Opt("max_cost"), " needs ", Opt("prices"),
                              " FILE (USD per 1M prompt and completion tokens per model) to "
                              "estimate the cost")

    def _check_security(self) -> None:
        names = ("tls_ca", "tls_cert", "tls_key", "auth_token_file")
        for name in names:
            if getattr(self, name) is not None:
                object.__setattr__(self, name, Path(getattr(self, name)))
        try:
            security = ClientSecurity.from_args(argparse.Namespace(
                **{n: None if getattr(self, n) is None else str(getattr(self, n))
                   for n in names}))
        except SecurityError as exc:  # its message names the option
            named = next((n for n in names if flag(n) in str(exc)), "tls_ca")
            raise ConfigError(named, str(exc)) from None
        object.__setattr__(self, "security", security)

    # -- what the rest of the evaluator reads ---------------------------------------------

    @property
    def targets(self) -> tuple[str, ...]:
        """The model replicas' gRPC targets."""
        return self.model  # normalised to a tuple in __post_init__

    @property
    def preset_spec(self) -> Preset:
        return presets.PRESETS[self.preset]

    @property
    def include_eot(self) -> bool:
        """The end token after the option counts: the preset decides."""
        return self.preset_spec.end_token

    @property
    def filters(self) -> Filters:
        return Filters(level=self.level, version=self.version, subpart=self.subpart,
                       dimensions=self.dimensions, limit=self.limit)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> RunConfig:
        """`seedbench run`'s parsed arguments as a RunConfig; raises ConfigError."""
        return cls(
            annotations=args.annotations, model=args.model, out=args.out,
            media_roots=media_roots_of(args.media_root), level=args.level,
            version=args.version, subpart=args.subpart, dimensions=args.dimensions,
            limit=args.limit, method=args.method, preset=args.preset, clip=args.clip or None,
            in_flight=args.in_flight, deadline_s=args.deadline_s, retries=args.retries,
            connect_timeout_s=args.connect_timeout_s, outage_wait_s=args.outage_wait_s,
            prices=args.prices, max_cost=args.max_cost, tls_ca=args.tls_ca,
            tls_cert=args.tls_cert, tls_key=args.tls_key, auth_token_file=args.auth_token_file,
            benchmark=args.benchmark)


def default(name: str):
    """A RunConfig field's default: the command line offers the same one, declared once."""
    return RunConfig.__dataclass_fields__[name].default


def media_roots_of(specs: list[str]) -> dict[str, Path]:
    """`--media-root` values (KEY=DIR or DIR) as RunConfig.media_roots."""
    for spec in specs:
        key, sep, path = spec.partition("=")
        if not spec.strip() or (sep and "/" not in key and not path.strip()):
            raise ConfigError("media_roots", Opt("media_roots"),
                              f" {spec!r}: no folder given (KEY=DIR or DIR)")
    roots = parse_media_roots(specs)
    if len(roots) < len(specs):
        keys = [next(iter(parse_media_roots([x]))) for x in specs]
        twice = sorted({k for k in keys if keys.count(k) > 1})
        raise ConfigError("media_roots", Opt("media_roots"), " given twice for " + ", ".join(
            repr(k) if k else "the bare (all-sources) root" for k in twice))
    return roots


def _media_roots(roots: Mapping) -> dict[str, Path]:
    if not isinstance(roots, Mapping):
        raise _bad("media_roots", f" must map a source to a folder, got {type(roots).__name__}")
    out = {}
    for key, path in roots.items():
        where = f" {key + '=' if key else ''}{path}"
        if not str(path).strip():
            raise ConfigError("media_roots", Opt("media_roots"), f"{where}: no folder given")
        path = Path(path).expanduser()
        if not path.exists():
            raise ConfigError("media_roots", Opt("media_roots"), f"{where}: the folder does not exist")
        if not path.is_dir():
            raise ConfigError("media_roots", Opt("media_roots"), f"{where}: not a folder")
        out[str(key).strip()] = path
    return out


def targets(values: str | Iterable[str]) -> tuple[str, ...]:
    """Model targets, each value possibly comma-separated, as one tuple of gRPC targets."""
    values = [values] if isinstance(values, str) else list(values or ())
    out = tuple(t.strip() for v in values for t in str(v).split(",") if t.strip())
    if not out:
        raise _bad("model", " needs at least one HOST:PORT or gRPC target")
    return out


def subpart(value: str | None) -> str | None:
    """One of the subpart names of a benchmark that has them (SEED-Bench-2's six), exactly."""
    names = B.all_subparts()
    if value is not None and value not in names:
        owners = " / ".join(sorted(set(names.values())))
        raise _bad("subpart", f" {value!r} is not a {owners} subpart; "
                              f"choose from: {', '.join(names)}")
    return value


def benchmark(value: str | None) -> str | None:
    """A benchmark definition's name or alias (v1, v2, v2plus), as its name; None: detect
    it from the file's fields."""
    if value is None:
        return None
    try:
        return B.get(str(value)).name
    except ValueError as exc:
        raise _bad("benchmark", f": {exc}") from None


def dimensions(value: Iterable[int] | str | None) -> frozenset[int] | None:
    """Dimension ids: "1,5,23" or integers; None (or empty) for all."""
    if value is None or value == "":
        return None
    try:
        if isinstance(value, str):
            ids = frozenset(int(x) for x in value.split(",") if x.strip())
        else:
            ids = frozenset(_number("dimensions", x, int) for x in value)
    except (ValueError, TypeError):
        raise _bad("dimensions", f" expects comma-separated integers, got {value!r}") from None
    return ids or None
