"""A torch-free test double whose answers follow a JSON script (evaluator tests only).

Serve it with `seedbench-model-server serve --backend scripted --model SCRIPT.json`.
The script says, per substring of the prompt text, which option Score favours
and what image GenerateImage returns, so a test can build a model whose text
ranking is right but whose image is wrong, and the other way round:

    {
      "name": "scripted-a",                       # optional, default: the file's stem
      "generate_image": true,                     # optional, advertised in Info
      "score": {"Draw a red circle": 2},          # substring -> index of the favoured option
      "generate": {"Which colour": "The answer is B."},  # substring -> generated text
      "image": {"Draw a red circle": "file:shapes/circle_red.png",
                "What comes next": "copy_input:2",
                "A blue star": "solid:#3046dc"},
      "default_score": 0,                         # optional, unmatched prompts
      "default_image": "solid:#808080",           # optional, unmatched prompts
      "default_generate": "A",                    # optional, unmatched prompts
      "log": "calls.jsonl",                       # optional: one JSON line per call
      "delay_s": {"slow question": 5},            # optional: substring -> seconds the
                                                  #   device thread sleeps on it
      "hold_until": {"held question": "go.flag"}  # optional: substring -> a file (beside the
    }                                             #   script) the device thread waits for

A hold lets a test keep the device busy for exactly as long as it needs (until it
creates the file) instead of for a guessed number of seconds; a hold gives up after
HOLD_LIMIT_S so a forgotten file cannot hang a server.

Generate is advertised when the script has "generate" or "default_generate".
Each log line holds the call, request id, text, image count and, for Score,
the sha256 of every image's encoded bytes as received (the server checked each
against its bytes), the options, the flags (include_end_of_turn, raw_prompt) and
the recipe fields (scoring_window, image_text, tokenization,
option_prefix/option_suffix, image_preprocessing): the backend offers every Score
feature and never applies a chat template, so a raw prompt is read as sent, like
any other.

Image directives: `file:PATH` (an image file, relative to the script's folder),
`copy_input:K` (the K-th image of the request), `solid:#rrggbb` (a 32x32 fill).
The first matching key, in file order, wins. Scores: the favoured option gets
a mean log-probability of -1 per token, the others -10. Everything is a pure
function of the script and the request, so replicas and reruns agree.
"""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from PIL import Image

from model_server.backends.base import (
    Backend,
    BackendInfo,
    GeneratedImage,
    GenerateImageTask,
    GenerateTask,
    OptionScore,
    ScoreResult,
    ScoreTask,
)
from model_server.backends.score_recipe import ScoreFeatures, enum_name
from model_server.backends.settings import NoSettings, parse_bool
from model_server.fingerprint import fingerprint_text
from protos import seedbench_pb2 as pb
from serving.errors import InvalidRequest

DEFAULT_IMAGE = "solid:#808080"
HOLD_LIMIT_S = 120.0  # a hold whose file never appears ends here (no server hangs on a test)


def _png(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.convert("RGB").save(buf, format="PNG")
    return buf.getvalue()


def recipe_record(t: ScoreTask) -> dict:
    """The request's recipe fields as logged (enum names; defaults when it sent none)."""
    r, prep = t.recipe, t.image_prep
    out = {"image_preprocessing": enum_name(pb.ImagePreprocessing.Mode, prep.mode)}
    if prep.mode != pb.ImagePreprocessing.MODE_MODEL_PROCESSOR:
        out.update(image_size=prep.size, image_mean=list(prep.mean), image_std=list(prep.std))
    if r is not None:
        out.update(scoring_window=enum_name(pb.ScoringWindow, r.window),
                   image_text=enum_name(pb.ImageText, r.image_text),
                   tokenization=enum_name(pb.PromptTokenization, r.tokenization),
                   option_prefix=r.option_prefix, option_suffix=r.option_suffix)
    return out


class ScriptedBackend(Backend[ScoreTask]):
    def __init__(self, model: str, settings: NoSettings | None = None):
        del settings  # the script holds everything
        if not model:
            raise ValueError("the scripted backend needs --model SCRIPT.json")
        self.path = Path(model)
        raw = self.path.read_bytes()
        script = json.loads(raw)
        self.base = self.path.resolve().parent
        self.name = str(script.get("name") or self.path.stem)
        flag = script.get("generate_image", True)
        self.can_generate_image = flag if isinstance(flag, bool) else parse_bool(str(flag))
        self.score_rules: dict[str, int] = {str(k): int(v)
                                            for k, v in script.get("score", {}).items()}
        self.image_rules: dict[str, str] = {str(k): str(v)
                                            for k, v in script.get("image", {}).items()}
        self.delays: dict[str, float] = {str(k): float(v)
                                         for k, v in script.get("delay_s", {}).items()}
        self.holds: dict[str, Path] = {str(k): self.base / str(v)
                                       for k, v in script.get("hold_until", {}).items()}
        self.default_score = int(script.get("default_score", 0))
        self.default_image = str(script.get("default_image", DEFAULT_IMAGE))
        self.generate_rules: dict[str, str] = {str(k): str(v)
                                               for k, v in script.get("generate", {}).items()}
        self.default_generate = script.get("default_generate")
        self.can_generate = bool(self.generate_rules) or self.default_generate is not None
        for d in (*self.image_rules.values(), self.default_image):
            self._check_directive(d)
        log = script.get("log")
        self.log_path = (self.base / log) if log else None
        self._log_lock = threading.Lock()
        self._fp = fingerprint_text("scripted", raw)

    @staticmethod
    def _check_directive(d: str) -> None:
        kind, _, arg = d.partition(":")
        if kind not in ("file", "copy_input", "solid") or not arg:
            raise ValueError(f"scripted backend: bad image directive {d!r} "
                             "(file:PATH, copy_input:K or solid:#rrggbb)")

    def info(self) -> BackendInfo:
        return BackendInfo(
            name=self.name, backend="scripted", fingerprint=self._fp, can_score=True,
            can_generate=self.can_generate, can_generate_image=self.can_generate_image, max_images=16,
            score_features=ScoreFeatures.everything(),
            details={"note": "test double: answers follow a JSON script", "script": self.path.name},
        )

    def _log(self, kind: str, request_id: str, text: str, images: int, **extra) -> None:
        if self.log_path is None:
            return
        line = json.dumps({"call": kind, "request_id": request_id, "text": text, "images": images,
                           **extra})
        with self._log_lock, open(self.log_path, "a", encoding="utf-8") as f:
            f.write(line + "\n")

    def _wait(self, text: str) -> None:
        """The device thread's delay and hold for a prompt (see the module docstring)."""
        time.sleep(self._match(self.delays, text, 0.0))
        gate = self._match(self.holds, text, None)
        give_up = time.monotonic() + HOLD_LIMIT_S
        while gate is not None and not gate.exists() and time.monotonic() < give_up:
            time.sleep(0.01)

    @staticmethod
    def _match(rules: dict, text: str, default):
        for key, value in rules.items():
            if key in text:
                return value
        return default

    def score(self, tasks: Sequence[ScoreTask]) -> list[ScoreResult]:
        out = []
        for t in tasks:
            self._log("Score", t.request_id, t.text, len(t.images), options=list(t.options),
                      image_sha256=list(t.image_sha256),
                      include_end_of_turn=t.include_end_of_turn, raw_prompt=t.raw_prompt,
                      **recipe_record(t))
            self._wait(t.text)
            favour = self._match(self.score_rules, t.text, self.default_score)
            row = []
            for i, option in enumerate(t.options):
                n = max(1, len(option.split()))
                row.append(OptionScore(logprob_sum=(-1.0 if i == favour else -10.0) * n,
                                       num_tokens=n))
            out.append(row)
        return out

    def generate(self, task: GenerateTask) -> str:
        if not self.can_generate:
            return super().generate(task)
        self._log("Generate", task.request_id, task.text, len(task.images),
                  max_new_tokens=task.max_new_tokens, temperature=task.temperature, seed=task.seed)
        self._wait(task.text)
        return str(self._match(self.generate_rules, task.text, self.default_generate or ""))

    def generate_image(self, task: GenerateImageTask) -> GeneratedImage:
        if not self.can_generate_image:
            return super().generate_image(task)
        self._log("GenerateImage", task.request_id, task.text, len(task.images))
        self._wait(task.text)
        kind, _, arg = self._match(self.image_rules, task.text, self.default_image).partition(":")
        if kind == "file":
            with Image.open(self.base / arg) as im:
                png = _png(im)
        elif kind == "copy_input":
            k = int(arg)
            if not 0 <= k < len(task.images):
                raise InvalidRequest("prompt.images",
                                     f"the script copies image {k}, the request has "
                                     f"{len(task.images)}")
            png = _png(task.images[k])
        else:
            png = _png(Image.new("RGB", (32, 32), arg))
        return GeneratedImage(png=png, text="")
