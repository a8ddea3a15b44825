"""On an accelerator: prefix-shared scoring equals the per-option reference.

float32 within 1e-4 (as the CPU tests require) and, in bfloat16, how often the
two paths pick the same answer. Prints one line per (architecture, dtype).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from model_server import backends  # noqa: E402
from model_server.tiny import make_tiny  # noqa: E402
from tests.test_prefix_sharing import MIXED  # noqa: E402


def main() -> int:
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        for arch in ("llava", "qwen2_vl"):
            path = make_tiny(arch, Path(tmp) / arch)
            for dtype in ("float32", "bfloat16"):
                b = backends.create("hf", str(path), device="cuda", dtype=dtype)
                got = b.score(MIXED * 4)
                want = [b.score_per_option(t) for t in MIXED * 4]
                diff = max(abs(x.logprob_sum - y.logprob_sum)
                           for g, w in zip(got, want, strict=True) for x, y in zip(g, w, strict=True))
                pick = [max(range(len(r)), key=lambda k: r[k].logprob_sum / r[k].num_tokens)
                        for r in got]
                ref = [max(range(len(r)), key=lambda k: r[k].logprob_sum / r[k].num_tokens)
                       for r in want]
                same = sum(a == c for a, c in zip(pick, ref, strict=True))
                param = next(b.model.parameters()).dtype
                print(f"{arch} {dtype} (weights {param}): max |diff| {diff:.2e}, "
                      f"same answer {same}/{len(pick)}")
                if dtype == "float32" and diff > 1e-4:
                    ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
