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
    from serving.lifecycle import add_server_process_args

    p = argparse.ArgumentParser(prog="seedbench-clip-server", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="serve one open_clip model")
    s.add_argument("--model", required=True,
                   help="open_clip model name (e.g. ViT-L-14), or 'tiny' for the seeded test model")
    s.add_argument("--checkpoint", default="",
                   help="local open_clip checkpoint file; none: seeded random weights")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=50061, help="0 picks a free port (printed)")
    s.add_argument("--device", default="", help="torch device, e.g. cpu, cuda (default: auto)")
    s.add_argument("--max-batch", type=int, default=32, help="images or texts per device batch")
    s.add_argument("--max-wait-ms", type=float, default=5.0, help="batching window in ms")
    s.add_argument("--cache-size", type=int, default=4096,
                   help="image embeddings kept, by sha256 (0 disables)")
    s.add_argument("--max-items", type=int, default=256, help="images or texts per request")
    add_server_process_args(s)
    s.add_argument("--log-level", default="INFO")
    s.set_defaults(func=cmd_serve)
    return p


def main(argv: list[str] | None = None) -> int:
    from serving.lifecycle import run_command

    return run_command(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
