"""seedbench-clip-server: serve an open_clip model over gRPC (seedbench.v1.ClipService)."""

from __future__ import annotations

import argparse
import asyncio
import sys

SERVICE_NAME = "seedbench.v1.ClipService"


def cmd_serve(args: argparse.Namespace) -> int:
    from clip_server.servicer import ClipServicer
    from protos import clip_pb2_grpc as cpb_grpc
    from serving.lifecycle import run_server, server_security

    max_bytes = int(args.max_message_mb * (1 << 20))
    servicer = ClipServicer(max_batch=args.max_batch, max_wait_ms=args.max_wait_ms,
                            max_items=args.max_items, max_message_bytes=max_bytes,
                            max_queue=args.max_queue)

    def load():
        from clip_server.embedder import ClipEmbedder

        return ClipEmbedder(args.model, checkpoint=args.checkpoint, device=args.device,
                            cache_size=args.cache_size)

    return asyncio.run(run_server(
        host=args.host, port=args.port, service_names=[SERVICE_NAME],
        add_servicer=lambda s: cpb_grpc.add_ClipServiceServicer_to_server(servicer, s),
        load=load, on_loaded=servicer.attach, max_message_bytes=max_bytes, grace_s=args.grace_s,
        metrics_port=args.metrics_port, security=server_security(args),
        batchers=lambda: [("images", servicer.image_batcher), ("texts", servicer.text_batcher)],
        busy_s=servicer.device.busy_s, stuck_after_s=args.stuck_after_s,
    ))


def build_parser() -> argparse.ArgumentParser:
    from serving import arg_types, lifecycle

    p = arg_types.CheckedArgumentParser(prog="seedbench-clip-server", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="serve one open_clip model")
    s.add_argument("--model", required=True,
                   help="open_clip model name (e.g. ViT-L-14), or 'tiny' for the seeded test model")
    s.add_argument("--checkpoint", default="",
                   help="local open_clip checkpoint file; none: seeded random weights")
    lifecycle.add_listen_args(s, port=50061)
    s.add_argument("--device", type=arg_types.device, default="",
                   help="torch device: cpu, cuda, cuda:N or mps (default: cuda if available)")
    lifecycle.add_batching_args(s, max_batch=32, unit="images or texts")
    s.add_argument("--cache-size", type=arg_types.non_negative_int, default=4096,
                   help="image embeddings kept, by sha256 (0 disables)")
    s.add_argument("--max-items", type=arg_types.positive_int, default=256,
                   help="images or texts per request")
    lifecycle.add_server_process_args(s)
    lifecycle.add_log_level_arg(s)
    s.set_defaults(func=cmd_serve)
    return p


def main(argv: list[str] | None = None) -> int:
    from serving.lifecycle import run_command

    return run_command(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
