"""On an accelerator: both prefix-shared paths (packed options, cache copy) equal the
per-option reference; batched generation gives every row the text it gets alone; and
how far images preprocessed on the device land from the CPU's.
Questions are prepared in worker threads as the server does (on CUDA: on the
prepare stream, handed over by event), so a missing wait shows here.

float32 within 1e-4 (as the CPU tests require) and, in bfloat16, how often each path
picks the reference's answer; generation: identical texts, required in float32,
counted in bfloat16. Prints one line per (architecture, dtype, path); exits 1 if a
float32 check fails. Usage: gpu_equality.py [device] (default cuda).
"""

from __future__ import annotations

import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import one_line_errors  # noqa: E402
from model_server import backends  # noqa: E402
from model_server.tiny import make_tiny  # noqa: E402
from tests.test_batched_generation import ROWS  # noqa: E402
from tests.test_prefix_sharing import MIXED  # noqa: E402

TOLERANCE = 1e-4


def _score_prepared_ahead(b, tasks):
    """As the server does on an accelerator: prepared in worker threads (their device work
    on the prepare stream), then scored on this thread."""
    with ThreadPoolExecutor(4) as pool:
        return b.score(list(pool.map(b.prepare, tasks)))


def _pick(rows):
    return [max(range(len(r)), key=lambda k: r[k].logprob_sum / r[k].num_tokens) for r in rows]


def main() -> int:
    device = sys.argv[1] if len(sys.argv) > 1 else "cuda"
    ok = True
    tasks = MIXED * 4
    with tempfile.TemporaryDirectory() as tmp:
        for arch in ("llava", "qwen2_vl"):
            path = make_tiny(arch, Path(tmp) / arch)
            for dtype in ("float32", "bfloat16"):
                ref_backend = backends.create("hf", str(path), device=device, dtype=dtype)
                want = [ref_backend.score_per_option(t) for t in tasks]
                for packing in ("true", "false"):
                    b = backends.create("hf", str(path), device=device, dtype=dtype,
                                        packing=packing)
                    got = _score_prepared_ahead(b, tasks)
                    diff = max(abs(x.logprob_sum - y.logprob_sum)
                               for g, w in zip(got, want, strict=True)
                               for x, y in zip(g, w, strict=True))
                    same = sum(a == c for a, c in zip(_pick(got), _pick(want), strict=True))
                    param = next(b.model.parameters()).dtype
                    bad = dtype == "float32" and diff > TOLERANCE
                    ok = ok and not bad
                    print(f"{arch} {dtype} (weights {param}) {b.scoring_note}: max |diff| "
                          f"{diff:.2e}, same answer {same}/{len(tasks)}"
                          + ("  FAIL (> 1e-4)" if bad else ""), flush=True)
                rows = ROWS * 3  # prepared in worker threads, as the server does
                with ThreadPoolExecutor(4) as pool:
                    batched = ref_backend.generate_batch(list(pool.map(
                        ref_backend.prepare_generate, rows)))
                alone = [ref_backend.generate(t) for t in rows]
                same = sum(x == y for x, y in zip(batched, alone, strict=True))
                bad = dtype == "float32" and same < len(rows)
                ok = ok and not bad
                print(f"{arch} {dtype} batched generation: identical texts {same}/{len(rows)}"
                      + ("  FAIL" if bad else ""), flush=True)
            # Images resized and normalised on the device vs on the CPU (float32): the
            # kernels differ, so this reports how far apart they land, not a pass/fail.
            scores = {}
            for on in ("true", "false"):
                b = backends.create("hf", str(path), device=device, dtype="float32",
                                    preprocess_on_device=on)
                scores[on] = (_score_prepared_ahead(b, tasks),
                              b.info().details["image_preprocessing"])
            (on_dev, where), (on_cpu, _) = scores["true"], scores["false"]
            diff = max(abs(x.logprob_sum - y.logprob_sum)
                       for g, w in zip(on_dev, on_cpu, strict=True) for x, y in zip(g, w, strict=True))
            same = sum(a == c for a, c in zip(_pick(on_dev), _pick(on_cpu), strict=True))
            print(f"{arch} float32 images preprocessed {where} vs on the cpu: max |diff| "
                  f"{diff:.2e}, same answer {same}/{len(tasks)}", flush=True)
    print("equality:", "PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(one_line_errors.run(main))
