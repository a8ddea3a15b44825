"""The content key: a hash of exactly what the model was asked for one question.

A stored answer belongs to its run key (model fingerprint, method, preset, ...)
AND to this key, so a question edited in place (SEED-Bench-1's file changed
twice under one name) or an image whose bytes changed is asked again, while
everything unchanged is reused. It covers what shapes the request and the
reading of its reply: the question text, the four choices, data_id, segment,
the dimension (it picks the handler and, for SEED-Bench-1 video, the frame
sampling), the sha256 of every image or frame sent, in order, and the method
and the preset's definition (not just its name). The ground-truth answer is NOT
in it: a corrected answer key re-scores the stored prediction without asking.

`KEY_VERSION` changes when the way a question becomes a request changes in
code (an instruction text, generation settings): every answer is then asked again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

from evaluator.data.dataset import Question

KEY_VERSION = 1
# The preset fields that shape a request or pick among the scores (not its notes).
PRESET_FIELDS = ("name", "prompt", "reduction", "end_token", "images", "option_prefix",
                 "letter_suffix")


def content_key(q: Question, method: str, preset, media_sha256: Sequence[str]) -> str:
    """sha256 (hex) of what was asked; `preset` is an evaluator.run.presets.Preset."""
    what = {
        "v": KEY_VERSION,
        "question": q.question,
        "choices": list(q.choices),
        "data_id": list(q.data_ids),
        "segment": list(q.segment) if q.segment is not None else None,
        "dimension": q.dimension,
        "media": list(media_sha256),
        "method": method,
        "preset": {f: getattr(preset, f) for f in PRESET_FIELDS},
    }
    text = json.dumps(what, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
