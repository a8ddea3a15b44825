"""A torch-free backend whose scores are a pure function of the request.

It stands in for a model where the model is not the point: evaluator tests,
client-overhead benchmarks, and the dry run of a deployment. Scores come from
sha256 of (model name, prompt, image hashes, option), so they are stable across
processes and replicas, and differ between questions.
"""

from __future__ import annotations

import hashlib
import io
import time
from collections.abc import Sequence
from dataclasses import dataclass

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
from model_server.backends.score_recipe import ScoreFeatures
from model_server.backends.settings import setting
from model_server.fingerprint import fingerprint_text


def _image_digest(images: Sequence[Image.Image]) -> bytes:
    h = hashlib.sha256()
    for im in images:
        h.update(f"{im.size}{im.mode}".encode())
        h.update(im.tobytes()[:4096])
    return h.digest()


@dataclass(frozen=True)
class SyntheticSettings:
    latency_ms: float = setting(0.0, "sleep per score batch, standing in for compute")
    max_images: int = setting(16, "images per prompt the server accepts")
    load_delay_s: float = setting(0.0, "sleep at load, standing in for loading weights")
    generate_image: bool = setting(True, "false: a model without image generation (L3 n/a)")


class SyntheticBackend(Backend[ScoreTask]):
    needs_pixels = False  # scores hash the images' sha256, never their pixels

    def __init__(self, model: str, settings: SyntheticSettings | None = None):
        settings = settings or SyntheticSettings()
        self.name = model or "synthetic"
        self.latency_s = settings.latency_ms / 1000.0
        self.max_images = settings.max_images
        self.can_generate_image = settings.generate_image
        time.sleep(settings.load_delay_s)

    def info(self) -> BackendInfo:
        fp = fingerprint_text("synthetic", self.name)
        return BackendInfo(
            name=self.name, backend="synthetic", fingerprint=fp, can_generate=True,
            can_generate_image=self.can_generate_image, max_images=self.max_images,
            score_features=ScoreFeatures.everything(),  # scores are hashes: nothing to honour
            details={"note": "hash-derived scores, no model"},
        )

    def _unit(self, *parts: bytes) -> float:
        h = hashlib.sha256(self.name.encode())
        for p in parts:
            h.update(p)
        return int.from_bytes(h.digest()[:8], "big") / 2**64

    def score(self, tasks: Sequence[ScoreTask]) -> list[ScoreResult]:
        if self.latency_s:
            time.sleep(self.latency_s)
        out = []
        for t in tasks:
            # No chat template is ever applied; a raw prompt still counts as a different prompt.
            base = (t.text.encode() + "".join(t.image_sha256).encode()
                    + (b"\x00raw" if t.raw_prompt else b""))
            out.append([
                OptionScore(logprob_sum=-10.0 * self._unit(base, o.encode()) * max(1, len(o.split())),
                            num_tokens=max(1, len(o.split())))
                for o in t.options
            ])
        return out

    def generate(self, task: GenerateTask) -> str:
        return "ABCD"[int(self._unit(task.text.encode()) * 4)]

    def generate_image(self, task: GenerateImageTask) -> GeneratedImage:
        if not self.can_generate_image:
            return super().generate_image(task)
        u = self._unit(task.text.encode(), _image_digest(task.images), str(task.seed).encode())
        color = tuple(int(u * 255 * k) % 256 for k in (1, 7, 13))
        buf = io.BytesIO()
        Image.new("RGB", (32, 32), color).save(buf, format="PNG")
        return GeneratedImage(png=buf.getvalue(), text=task.text[:32] if task.with_text else "")
