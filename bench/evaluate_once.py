"""One evaluation through the evaluator's library, in a process of its own.

bench/run_bench.py measures the evaluator's peak memory, so the evaluation runs
alone in a child process: RunConfig's fields come as one JSON argument, and the
run record (run.json's content) and the most common error reasons go to stdout
as JSON. Exit 0, 1 (every question asked errored) or 2 (the run could not start).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from evaluator import ConfigError, RunConfig, RunFailed, evaluate  # noqa: E402


def main(argv: list[str]) -> int:
    try:
        result = evaluate(RunConfig(**json.loads(argv[0])))
    except (ConfigError, RunFailed) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({"run": result.run.to_dict(),
                      "errors": [f"{g.status}: {g.reason}" for g in result.summary.error_reasons[:3]]}))
    return 1 if result.all_failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
