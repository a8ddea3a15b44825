"""Benchmark command lines end a bad path, file or value in one line naming it (exit 2),
never a traceback."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from evaluator.data.annotation_file import AnnotationError
from evaluator.data.media import MediaError


def run(main: Callable[[], int]) -> int:
    """main()'s exit status; the errors a user can cause become one line on stderr."""
    prog = Path(sys.argv[0]).name
    try:
        return main()
    except subprocess.CalledProcessError as exc:
        said = (exc.stderr or b"").decode(errors="replace") if isinstance(exc.stderr, bytes) \
            else (exc.stderr or "")
        last = said.strip().splitlines()[-1] if said.strip() else f"exit status {exc.returncode}"
        print(f"{prog}: {' '.join(map(str, exc.cmd))} failed: {last}", file=sys.stderr)
    except (OSError, ValueError, AnnotationError, MediaError) as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
    return 2
