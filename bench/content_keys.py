"""What deciding a rerun's skips costs: content keys from remembered digests vs reading every image.

Writes N media files (random bytes of the given size), one question each, and
computes every question's content key (evaluator.run.asked.current_keys) twice
in this one process, side by side: with no remembered digests (every file read
and hashed, as a store without the digest table would need) and with the digests
loaded from the results store (a stat per file). The files were just written, so
the reading side is served from the page cache: on a cold cache or a network
file system reading costs more, and the ratio printed is a lower bound.
Prints one line.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import one_line_errors  # noqa: E402
from evaluator.data.dataset import Question  # noqa: E402
from evaluator.data.digests import FileDigests  # noqa: E402
from evaluator.results.store import Store  # noqa: E402
from evaluator.run import asked, presets  # noqa: E402
from evaluator.run.handlers import RunContext  # noqa: E402


def keys_with(digests: FileDigests, questions: list[Question], media: ThreadPoolExecutor) -> float:
    ctx = RunContext(pool=None, method="ppl", preset=presets.get(presets.DEFAULT), deadline_s=1.0,
                     media_pool=media, digests=digests)
    t0 = time.perf_counter()
    keys = asyncio.run(asked.current_keys(questions, ctx))
    elapsed = time.perf_counter() - t0
    assert len(keys) == len(questions) and all(keys.values())
    return elapsed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--questions", type=int, default=24_000)
    ap.add_argument("--kb", type=int, default=100, help="size of each media file")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="seedbench-keys-") as tmp, \
            ThreadPoolExecutor(4, thread_name_prefix="media") as media:
        root = Path(tmp)
        questions = []
        for i in range(args.questions):
            path = root / "media" / f"{i}.jpg"
            path.parent.mkdir(exist_ok=True)
            path.write_bytes(os.urandom(args.kb * 1024))
            questions.append(Question(index=i, question_id=str(i), question=f"question {i}",
                                      choices=("a", "b", "c", "d"), answer="A", dimension=1,
                                      data_ids=(path.name,), images=(path,)))
        store = Store(root / "out")
        store.start_writer()
        reading = keys_with(FileDigests((), store.put_file_digest), questions, media)
        store.stop_writer()
        t0 = time.perf_counter()
        known = store.file_digests()
        load_s = time.perf_counter() - t0
        store.close()
        remembered = keys_with(FileDigests(known), questions, media)
    print(f"content keys of {args.questions} questions ({args.kb} KB media each): reading every "
          f"file {reading:.2f} s, remembered digests {remembered:.2f} s (+ {load_s:.2f} s loading "
          f"{len(known)} digests from the store): {reading / (remembered + load_s):.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(one_line_errors.run(main))
