"""The settings of one `seedbench run`, converted from the command line once.

Everything downstream (connecting, planning, running, recording) reads this
frozen object; nothing adds settings to it later.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path

from evaluator.data import benchmarks as B
from evaluator.data.dataset import Filters
from evaluator.data.media import parse_media_roots
from evaluator.run import cost, methods, presets
from evaluator.run.presets import Preset
from serving.security import PLAIN, ClientSecurity, SecurityError


class ConfigError(ValueError):
    """A command-line value that cannot be used; the message names the option."""


@dataclass(frozen=True)
class RunConfig:
    annotations: Path
    out: Path
    targets: tuple[str, ...]  # model replicas
    media_roots: dict[str, Path] = field(default_factory=dict, hash=False)
    filters: Filters = Filters()
    method: str = "ppl"
    preset: Preset = presets.PRESETS[presets.DEFAULT]
    in_flight: int = 0  # 0: the replicas' suggestion
    deadline_s: float = 120.0
    retries: int = 4
    connect_timeout_s: float = 10.0
    clip: str | None = None  # CLIP server target (L3)
    dry_run: bool = False
    outage_wait_s: float = 180.0  # how long to wait out an outage of every replica
    security: ClientSecurity = field(default=PLAIN, hash=False, repr=False)
    prices: dict[str, cost.Price] | None = field(default=None, hash=False)  # --prices
    max_cost: float | None = None  # USD; stop sending new questions once the estimate reaches it
    benchmark: str | None = None  # a benchmark name: overrides the detection from the file

    @property
    def include_eot(self) -> bool:
        """The end token after the option counts: the preset decides."""
        return self.preset.end_token

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> RunConfig:
        """The one conversion from parsed arguments; raises ConfigError naming the option."""
        if args.in_flight < 0:
            raise ConfigError(f"--in-flight must be 0 (automatic) or more, got {args.in_flight}")
        if args.retries < 0:
            raise ConfigError(f"--retries must be 0 or more, got {args.retries}")
        if args.limit is not None and args.limit < 0:
            raise ConfigError(f"--limit must be 0 or more, got {args.limit}")
        subpart(args.subpart)
        bench = benchmark(getattr(args, "benchmark", None))
        try:
            preset = presets.get(args.preset)
        except ValueError as exc:
            raise ConfigError(f"--preset: {exc}") from None
        why = methods.refusal(args.method, preset)
        if why:
            raise ConfigError(why)
        for name in ("deadline_s", "connect_timeout_s"):
            if not getattr(args, name) > 0:
                opt = "--" + name.replace("_", "-")
                raise ConfigError(f"{opt} must be a positive number of seconds")
        if args.outage_wait_s < 0:
            raise ConfigError("--outage-wait-s must be 0 (no waiting) or more seconds")
        try:
            security = ClientSecurity.from_args(args)
        except SecurityError as exc:
            raise ConfigError(str(exc)) from None
        max_cost = getattr(args, "max_cost", None)
        if max_cost is not None and not max_cost > 0:
            raise ConfigError(f"--max-cost must be a positive number of USD, got {max_cost:g}")
        prices = None
        if getattr(args, "prices", None):
            try:
                prices = cost.load_prices(Path(args.prices))
            except cost.PriceError as exc:
                raise ConfigError(str(exc)) from None
        if max_cost is not None and prices is None:
            raise ConfigError("--max-cost needs --prices FILE (USD per 1M prompt and completion "
                              "tokens per model) to estimate the cost")
        out = Path(args.out)
        if out.exists() and not out.is_dir():
            raise ConfigError(f"--out {out}: exists and is not a folder")
        for spec in args.media_root:
            key, sep, path = spec.partition("=")
            if not spec.strip() or (sep and "/" not in key and not path.strip()):
                raise ConfigError(f"--media-root {spec!r}: no folder given (KEY=DIR or DIR)")
        roots = parse_media_roots(args.media_root)
        if len(roots) < len(args.media_root):
            keys = [next(iter(parse_media_roots([x]))) for x in args.media_root]
            twice = sorted({k for k in keys if keys.count(k) > 1})
            raise ConfigError("--media-root given twice for "
                              + ", ".join(repr(k) if k else "the bare (all-sources) root"
                                          for k in twice))
        for key, path in roots.items():
            where = f"--media-root {key + '=' if key else ''}{path}"
            if not path.exists():
                raise ConfigError(f"{where}: the folder does not exist")
            if not path.is_dir():
                raise ConfigError(f"{where}: not a folder")
        return cls(
            annotations=Path(args.annotations), out=out,
            targets=targets(args.model), media_roots=roots,
            filters=Filters(level=args.level, version=args.version, subpart=args.subpart,
                            dimensions=dimensions(args.dimensions), limit=args.limit),
            method=args.method, preset=preset,
            in_flight=args.in_flight, deadline_s=args.deadline_s, retries=args.retries,
            connect_timeout_s=args.connect_timeout_s, clip=args.clip or None,
            dry_run=args.dry_run, outage_wait_s=args.outage_wait_s, security=security,
            prices=prices, max_cost=max_cost, benchmark=bench)


def targets(values: list[str]) -> tuple[str, ...]:
    """`--model` values, each possibly comma-separated, as one list of gRPC targets."""
    out = tuple(t.strip() for v in values for t in v.split(",") if t.strip())
    if not out:
        raise ConfigError("--model needs at least one HOST:PORT or gRPC target")
    return out


def subpart(value: str | None) -> str | None:
    """`--subpart`: one of the subpart names of a benchmark that has them, exactly."""
    names = B.all_subparts()
    if value is not None and value not in names:
        owners = " / ".join(sorted(set(names.values())))
        raise ConfigError(f"--subpart {value!r} is not a {owners} subpart; "
                          f"choose from: {', '.join(names)}")
    return value


def benchmark(value: str | None) -> str | None:
    """`--benchmark`: a definition's name or alias, as its name; None: detect from the file."""
    if value is None:
        return None
    try:
        return B.get(value).name
    except ValueError as exc:
        raise ConfigError(f"--benchmark: {exc}") from None


def dimensions(value: str | None) -> frozenset[int] | None:
    if not value:
        return None
    try:
        return frozenset(int(x) for x in value.split(",") if x.strip())
    except ValueError:
        raise ConfigError(
            f"--dimensions expects comma-separated integers, got {value!r}") from None
