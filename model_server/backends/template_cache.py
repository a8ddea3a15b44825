"""The chat template's renders, remembered for a while.

One request renders the same messages more than once: admission counts the prompt's
tokens, then its preparation renders it again; a Score question renders its prompt
once per option. A render through the processor's jinja template costs milliseconds
of CPU (about 2.5 ms for LLaVA's on this project's CPUs, more than the demo model's
forward per token), on the cores the model itself needs. Renders are pure functions of
the messages and the flags, so the most recent ones are kept and reused.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Callable


class TemplateCache:
    """`render(messages, **flags) -> str` with the last `size` results remembered."""

    def __init__(self, render: Callable[..., str], size: int = 2048):
        self._render = render
        self._size = size
        self._texts: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __call__(self, messages: list[dict], **flags) -> str:
        key = json.dumps([messages, flags], sort_keys=True, ensure_ascii=False)
        with self._lock:
            text = self._texts.get(key)
            if text is not None:
                self._texts.move_to_end(key)
                self.hits += 1
                return text
        text = self._render(messages, **flags)  # outside this lock: renders may run in parallel
        with self._lock:
            self.misses += 1
            self._texts[key] = text
            if len(self._texts) > self._size:
                self._texts.popitem(last=False)
        return text
