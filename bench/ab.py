"""Two settings of the hf backend in ONE process, alternating batch by batch.

Separate processes measured one after another see different machine load on a
shared machine; alternating batches in one process does not, so this is the
measurement behind the `auto` choices on a device:
- `--toggle packing`: packed vs cache-copy option scoring (`packing=auto`);
- `--toggle image-device`: images resized and normalised on the model's device vs
  on the CPU (`preprocess_on_device=auto`), preparation included and run in
  worker threads as the server does.
Prints one line.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import one_line_errors  # noqa: E402
from bench.inproc import load_tasks, run  # noqa: E402
from model_server import backends  # noqa: E402

TOGGLES = {  # toggle: (setting that makes "on" possible, where the switch is, on/off names)
    "packing": ({"packing": "true"}, lambda b: (b, "packed"), ("packed", "cache copy")),
    "image-device": ({"preprocess_on_device": "true"},
                     lambda b: (b.inputs, "images_on_device"),
                     ("images on device", "images on cpu")),
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", required=True, help="a `seedbench sample-data` directory")
    ap.add_argument("--toggle", choices=sorted(TOGGLES), default="packing")
    ap.add_argument("--device", default="")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    data = Path(args.data)
    tasks, _ = load_tasks(str(data / "SEED-Bench_v2_level1_2_3.json"),
                          [f"cc3m={data / 'cc3m'}", f"SEED-Bench v2={data / 'seed_bench_v2'}"], None)
    settings, switch, names = TOGGLES[args.toggle]
    b = backends.create("hf", args.model, device=args.device, threads=args.threads, **settings)
    holder, attribute = switch(b)
    if not getattr(holder, attribute):
        details = b.info().details
        raise SystemExit(f"{args.toggle} does not apply here: option scoring "
                         f"{details['option_scoring']}, image preprocessing "
                         f"{details['image_preprocessing']}")
    for t in tasks[:2]:
        b.score([t])
    sync = __import__("torch").cuda.synchronize if b.device.startswith("cuda") else (lambda: None)
    seconds = {True: 0.0, False: 0.0}
    for r in range(args.rounds):
        for k in range(0, len(tasks), args.batch):
            order = (True, False) if (k // args.batch + r) % 2 == 0 else (False, True)
            for on in order:
                setattr(holder, attribute, on)
                sync()
                t0 = time.perf_counter()
                run(b, tasks[k:k + args.batch], "shared", args.batch)
                sync()
                seconds[on] += time.perf_counter() - t0
    n = args.rounds * len(tasks)
    on_name, off_name = names
    print(f"{Path(args.model).name} on {b.device}: {on_name} {n / seconds[True]:.2f} questions/s, "
          f"{off_name} {n / seconds[False]:.2f} questions/s; {on_name} / {off_name} "
          f"{seconds[False] / seconds[True]:.2f}x ({n} questions each, alternating batches of "
          f"{args.batch})")
    return 0


if __name__ == "__main__":
    sys.exit(one_line_errors.run(main))
