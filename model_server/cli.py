"""seedbench-model-server: serve a model over gRPC, or build a tiny test model."""

from __future__ import annotations

import argparse
import asyncio
import sys

SERVICE_NAME = "seedbench.v1.ModelService"


def check_serve(args: argparse.Namespace) -> None:
    """Parse-time check of what no single flag's type can check: the backend's typed
    settings from --backend-arg, --device and --dtype (into args.settings, converted once
    here), and --model where the backend needs one. Nothing is loaded yet."""
    import dataclasses
    import logging

    from model_server import backends
    from model_server.backends.base import entry, settings_class
    from model_server.backends.settings import SettingsError

    needs = entry(args.backend).model
    if needs and not args.model:
        raise ValueError(f"--backend {args.backend} needs --model ({needs})")
    raw = dict(args.backend_arg)
    declared = {f.name for f in dataclasses.fields(settings_class(args.backend))}
    for flag in ("device", "dtype"):
        value = getattr(args, flag)
        if value and flag in declared:
            raw.setdefault(flag, value)
        elif value:
            logging.getLogger(__name__).info("--%s ignored: the %s backend has no %s", flag,
                                             args.backend, flag)
    try:
        args.settings = backends.parse_settings(args.backend, raw)
    except SettingsError as exc:
        raise ValueError(f"--backend-arg: {exc}") from None


def cmd_serve(args: argparse.Namespace) -> int:
    from model_server import backends
    from model_server.servicer import ModelServicer
    from protos import seedbench_pb2_grpc as pb_grpc
    from serving.lifecycle import run_server, server_security

    max_bytes = int(args.max_message_mb * (1 << 20))
    servicer = ModelServicer(max_batch=args.max_batch, max_wait_ms=args.max_wait_ms,
                             max_message_bytes=max_bytes, max_queue=args.max_queue,
                             max_new_tokens=args.max_new_tokens)

    def load():
        backend = backends.create(args.backend, args.model, args.settings)
        backend.check()
        return backend

    return asyncio.run(run_server(
        host=args.host, port=args.port, service_names=[SERVICE_NAME],
        add_servicer=lambda s: pb_grpc.add_ModelServiceServicer_to_server(servicer, s),
        load=load, on_loaded=servicer.attach, max_message_bytes=max_bytes, grace_s=args.grace_s,
        metrics_port=args.metrics_port, batchers=servicer.batchers,
        busy_s=servicer.device.busy_s, stuck_after_s=args.stuck_after_s,
        security=server_security(args),
    ))


def cmd_backends(args: argparse.Namespace) -> int:
    from model_server.backends import base
    from model_server.backends.settings import describe

    for key in base.available():
        entry = base.entry(key)
        print(f"{key}: {entry.about}" + (f" (--model: {entry.model})" if entry.model else ""))
        rows = describe(base.settings_class(key))
        if not rows:
            print("  (no settings)")
        for name, kind, default, help_line in rows:
            print(f"  {name} ({kind}, default {default}): {help_line}")
    return 0


def cmd_tiny(args: argparse.Namespace) -> int:
    from model_server.tiny import ARCHS, make_tiny

    if args.arch not in ARCHS:
        raise SystemExit(f"unknown --arch {args.arch!r}; choose from {', '.join(ARCHS)}")
    path = make_tiny(args.arch, args.out, seed=args.seed, preset=args.preset,
                     random_init=args.random_init)
    print(path)
    return 0


def build_parser() -> argparse.ArgumentParser:
    from model_server.backends.base import available  # torch-free: the registry only
    from model_server.backends.settings import DTYPES
    from serving import arg_types, lifecycle

    p = arg_types.CheckedArgumentParser(prog="seedbench-model-server", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("serve", help="serve one model over gRPC (seedbench.v1.ModelService)")
    s.add_argument("--backend", default="hf", choices=available(), help="default: hf")
    s.add_argument("--model", default="",
                   help="model directory (hf, janus), remote model id (openai, vllm), "
                   "script file (scripted) or any name (synthetic)")
    lifecycle.add_listen_args(s, port=50051)
    s.add_argument("--device", type=arg_types.device_or_auto, default="",
                   help="torch device: cpu, cuda, cuda:1, or auto to shard over all GPUs "
                   "(hf backend; needs accelerate). Default: cuda if available, else cpu")
    s.add_argument("--dtype", default="", choices=("", *DTYPES), metavar="DTYPE",
                   help=f"{', '.join(DTYPES)} (default: auto)")
    lifecycle.add_batching_args(s, max_batch=8, unit="questions")
    s.add_argument("--max-new-tokens", type=arg_types.positive_int, default=1024,
                   help="largest max_new_tokens a Generate request may ask for")
    s.add_argument("--backend-arg", type=arg_types.key_value, action="append", default=[],
                   metavar="KEY=VALUE",
                   help="backend setting (repeatable), e.g. prefix_sharing=false; "
                   "`seedbench-model-server backends` lists every backend's settings")
    lifecycle.add_server_process_args(s)
    lifecycle.add_log_level_arg(s)
    s.set_defaults(func=cmd_serve, check=check_serve)

    b = sub.add_parser("backends", help="list the backends and their settings (--backend-arg)")
    lifecycle.add_log_level_arg(b, default="WARNING")
    b.set_defaults(func=cmd_backends)

    t = sub.add_parser("tiny", help="write a tiny random model directory (offline) for tests")
    t.add_argument("--arch", required=True,
                   help="llava, llava_hf (llava-hf's chat template layout, BOS-adding tokenizer), "
                        "qwen2_vl or janus")
    t.add_argument("--out", required=True, help="directory to write")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--preset", default="tiny", choices=["tiny", "deep", "small", "mid", "7b"],
                   help="size (llava only beyond tiny): deep (slow tokens, no early end) for "
                        "deadline tests, small for CPU benchmarks, mid (~1B) and 7b "
                        "(LLaVA-1.5-7B's shapes, weights made on load) for GPU")
    t.add_argument("--random-init", action="store_true",
                   help="write no weights: the server makes seeded random ones on its device")
    lifecycle.add_log_level_arg(t, default="WARNING")
    t.set_defaults(func=cmd_tiny)

    from model_server.parity import add_parser as add_parity  # torch-free until it runs

    add_parity(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    from serving.lifecycle import run_command

    return run_command(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
