"""The benchmark's shipped 8-frame folders for SEED-Bench-1 video questions.

Layout (the unzipped `v1_video`): `ROOT/task10/<sub>/<question_id>/1.png..8.png`,
likewise `task11/` and `task12/`. The folders are keyed by QUESTION id, not by
data_id, and `<sub>` differs between copies (`ssv2_8_frame`, `kitchen_8_frame`,
`breakfast_8_frame` have been seen), so each `taskNN/` is indexed once: every
folder directly under it, or one level deeper, is a candidate question folder.
"""

from __future__ import annotations

import threading
from pathlib import Path

from evaluator.data.media import MediaError

TASK_DIRS = {10: "task10", 11: "task11", 12: "task12"}


class FrameFolders:
    """Finds a question's frame folder under ROOT/taskNN/, whatever <sub> is called."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self._index: dict[int, dict[str, list[Path]]] = {}
        self._lock = threading.Lock()

    def task_dir(self, dim: int) -> Path:
        return self.root / TASK_DIRS[dim]

    def has_task(self, dim: int) -> bool:
        return dim in TASK_DIRS and self.task_dir(dim).is_dir()

    def folder(self, dim: int, question_id: str) -> Path:
        """The question's folder; raises MediaError naming where it was looked for."""
        where = self.task_dir(dim)
        found = self._task_index(dim).get(question_id, [])
        if not found:
            if not where.is_dir():
                raise MediaError("question_id", f"no frame folder: {where} does not exist "
                                                f"(--media-root frames= must hold task10/, "
                                                f"task11/, task12/)")
            raise MediaError("question_id", f"no frame folder for question {question_id} "
                                            f"under {where}/<sub>/")
        if len(found) > 1:
            raise MediaError("question_id", "several frame folders for question "
                             f"{question_id}: " + ", ".join(str(p) for p in found))
        return found[0]

    def _task_index(self, dim: int) -> dict[str, list[Path]]:
        with self._lock:
            if dim not in self._index:
                self._index[dim] = _scan(self.task_dir(dim))
            return self._index[dim]


def _scan(task_dir: Path) -> dict[str, list[Path]]:
    """question_id -> folders holding files, from taskNN/<qid>/ and taskNN/<sub>/<qid>/."""
    index: dict[str, list[Path]] = {}
    if not task_dir.is_dir():
        return index
    for child in sorted(task_dir.iterdir()):
        if not child.is_dir():
            continue
        grandchildren = sorted(child.iterdir())
        if any(g.is_file() for g in grandchildren):
            index.setdefault(child.name, []).append(child)  # taskNN/<qid>/1.png
        for g in grandchildren:
            if g.is_dir():
                index.setdefault(g.name, []).append(g)  # taskNN/<sub>/<qid>/1.png
    return index
