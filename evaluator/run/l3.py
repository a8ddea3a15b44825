"""L3 handlers (SEED-Bench-2 dims 25-27): generate an image, pick the option CLIP finds closest.

- 25 Text-to-Image: GenerateImage from the question text (no input images);
  `data_id` holds the 4 option images.
- 26 Next Image Prediction: `data_id` = the question images, then the 4 option
  images; GenerateImage from the question text with the question images as input.
- 27 Text-Image Creation: rank the text choices with Score (the run's method,
  no images: the option images are the answers); only when that ranking is
  right, GenerateImage from the question text and pick among the 4 option
  images (one per choice, in order). Correct only if both are right, so the
  stored prediction is the text letter when the text is wrong, else the
  CLIP-picked letter: prediction == answer iff both parts are right. Both parts
  are kept in the stored scores (`text_prediction`, `image_prediction`).

The prediction is the option image with the highest cosine similarity to the
generated image (ties go to the earliest letter). Seeds are a function of the
question id, so reruns and replicas reproduce the same image. Each generated
image is written to OUT/generated/<question_id>.png (atomically; a rerun writes
the same bytes) and its sha256, the seed, the similarities and the CLIP
fingerprint are stored with the answer.

The handlers are active only with a CLIP server (`--clip`) and a model whose
Info advertises `generate_image`; `missing_note` says which one is lacking.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import re
from pathlib import Path

from PIL import Image

from evaluator.data.dataset import LETTERS, PLACEHOLDER, Question
from evaluator.run.clip_client import ClipClient, cosine
from evaluator.run.errors import QuestionError
from evaluator.run.handlers import Answer, Handler, RunContext, rank_options
from protos import seedbench_pb2 as pb
from serving.atomic_files import write_atomic

GENERATED_DIR = "generated"
N_OPTIONS = 4

NOTE_NEITHER = "L3 requires --clip and an image-generating model"
NOTE_NO_CLIP = "L3 requires --clip (a CLIP server to score generated images)"


def missing_note(clip_given: bool, model_can_generate_image: bool, model_name: str) -> str | None:
    """Why dims 25-27 cannot run (None when they can)."""
    if clip_given and model_can_generate_image:
        return None
    if not clip_given and not model_can_generate_image:
        return NOTE_NEITHER
    if not clip_given:
        return NOTE_NO_CLIP
    return (f"L3 requires an image-generating model: {model_name or 'the model'} does not "
            "advertise generate_image")


def seed_for(question_id: str) -> int:
    """Deterministic per question, the same in every process, replica and rerun."""
    digest = hashlib.sha256(f"seedbench-l3:{question_id}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def image_file_name(question_id: str) -> str:
    """A safe file name for a question's generated image (odd ids get a hash suffix)."""
    if re.fullmatch(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}", question_id):
        return f"{question_id}.png"
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", question_id)[:64].lstrip(".") or "q"
    return f"{stem}-{hashlib.sha256(question_id.encode()).hexdigest()[:12]}.png"


def prompt_text(text: str, n_images: int) -> str:
    """Keep `<img>` marks only if they match the images sent; otherwise drop them."""
    if PLACEHOLDER in text and text.count(PLACEHOLDER) != n_images:
        text = " ".join(text.replace(PLACEHOLDER, " ").split())
    return text


def option_paths(q: Question) -> list[str]:
    """Where the option images were read (kept with the answer for the reports' gallery):
    file paths, or a snapshot's locators (evaluator.data.image_source.locate reads both)."""
    return [str(p) for p in q.images[-N_OPTIONS:]]




def _check_decodable(data: bytes) -> None:
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.verify()
    except Exception as exc:
        raise QuestionError(f"GenerateImage returned an undecodable image ({exc})") from None


class L3Scorer:
    """Holds the CLIP client and the output folder; `handlers()` maps dims 25-27."""

    def __init__(self, clip: ClipClient, out_dir: str | Path):
        if clip.info is None:
            raise ValueError("connect the CLIP client before scoring L3")
        self.clip = clip
        self.clip_fingerprint = clip.info.fingerprint
        self.out_dir = Path(out_dir)

    def handlers(self) -> dict[int, Handler]:
        return {25: self.text_to_image, 26: self.next_image, 27: self.text_image_creation}

    @staticmethod
    def _split(q: Question, images: list[pb.Image]) -> tuple[list[pb.Image], list[pb.Image]]:
        """(input images, option images): the option images are the last four."""
        n = len(images)
        if q.dimension == 26:
            if n < N_OPTIONS:
                raise QuestionError(f"dimension 26 needs its question images then "
                                    f"{N_OPTIONS} option images; data_id gives {n}")
        elif n != N_OPTIONS:
            raise QuestionError(f"dimension {q.dimension} needs {N_OPTIONS} option images in "
                                f"data_id; it gives {n}")
        return images[:n - N_OPTIONS], images[n - N_OPTIONS:]

    async def _generate(self, q: Question, ctx: RunContext,
                        inputs: list[pb.Image]) -> tuple[pb.Image, dict]:
        seed = seed_for(q.question_id)
        request = pb.GenerateImageRequest(
            request_id=q.question_id, seed=seed,
            prompt=pb.Prompt(text=prompt_text(q.question, len(inputs)), images=inputs))
        resp = await ctx.pool.call("GenerateImage", request, ctx.deadline_s)
        data = resp.image.data
        if not data:
            raise QuestionError("GenerateImage returned no image")
        digest = hashlib.sha256(data).hexdigest()
        if resp.image.sha256 and resp.image.sha256.lower() != digest:
            raise QuestionError("GenerateImage: image.sha256 does not match the image bytes")
        name = image_file_name(q.question_id)

        def save() -> None:
            _check_decodable(data)
            write_atomic(self.out_dir / GENERATED_DIR / name, data, make_parents=True)

        await ctx.off_loop(save)
        record = {"seed": seed, "sha256": digest, "file": f"{GENERATED_DIR}/{name}",
                  "input_images": len(inputs)}
        return pb.Image(data=data, sha256=digest), record

    async def _pick(self, generated: pb.Image, options: list[pb.Image]) -> tuple[str, list[float]]:
        vectors = await self.clip.embed_images([generated, *options])
        sims = [cosine(vectors[0], v) for v in vectors[1:]]
        best = max(range(len(sims)), key=lambda i: (sims[i], -i))
        return LETTERS[best], sims

    async def _image_answer(self, q: Question, ctx: RunContext) -> Answer:
        inputs, options = self._split(q, await ctx.images(q))
        generated, record = await self._generate(q, ctx, inputs)
        letter, sims = await self._pick(generated, options)
        return Answer(prediction=letter, scores={
            "clip": self.clip_fingerprint, "generated": record, "similarities": sims,
            "image_prediction": letter, "option_images": option_paths(q),
            "question_images": [str(p) for p in q.images[:-N_OPTIONS]]})

    async def text_to_image(self, q: Question, ctx: RunContext) -> Answer:
        """Dim 25."""
        return await self._image_answer(q, ctx)

    async def next_image(self, q: Question, ctx: RunContext) -> Answer:
        """Dim 26."""
        return await self._image_answer(q, ctx)

    async def text_image_creation(self, q: Question, ctx: RunContext) -> Answer:
        """Dim 27: text ranking first; the image only counts when the text is right."""
        _, options = self._split(q, await ctx.images(q))
        text_q = dataclasses.replace(q, question=prompt_text(q.question, 0))
        text = await rank_options(text_q, ctx, [])
        scores = {"clip": self.clip_fingerprint, "text_prediction": text.prediction,
                  "text_scores": text.scores, "image_prediction": None, "generated": None,
                  "similarities": None, "option_images": option_paths(q)}
        if text.prediction != q.answer:
            return Answer(prediction=text.prediction, scores=scores)
        generated, record = await self._generate(q, ctx, [])
        letter, sims = await self._pick(generated, options)
        scores.update(image_prediction=letter, generated=record, similarities=sims)
        return Answer(prediction=letter, scores=scores)
