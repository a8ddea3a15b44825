"""Janus backend: one model that scores options, writes text and generates images (L3).

Text generation (Generate, and GenerateImage's with_text) is batched by
decode_loop; image generation by janus_images (classifier-free guidance over VQ
image tokens, a batch of requests at once, each image as if alone) and the VQ
decoder; the uint8 conversion is done here because the processor's PIL
post-processing is not reliable. Input images (dim 26, next image prediction)
are placed in the prompt as the vision encoder's features, the same way Janus
reads images when it answers questions. Everything random is seeded from the
request, so the same request gives byte-identical PNGs, alone or in a batch.

Admission (before a request queues): prompt tokens, each image counted as the
fixed number of tokens the processor expands it to, plus the answer (the
longest option, max_new_tokens, or the generated image's tokens) against the
language model's context; options x option tokens against a budget.
"""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Sequence
from pathlib import Path

from serving import environment

environment.apply()  # before torch and transformers are imported: they read these once

import torch  # noqa: E402
from PIL import Image  # noqa: E402

from model_server.backends.admission import (  # noqa: E402
    check_context,
    check_option_budget,
    check_text_size,
)
from model_server.backends.base import (  # noqa: E402
    Backend,
    BackendInfo,
    GeneratedImage,
    GenerateImageTask,
    GenerateResult,
    GenerateTask,
    OptionScore,
    ScoreResult,
    ScoreTask,
    each_or_error,
)
from model_server.backends.chat_prompt import (  # noqa: E402
    answer_span,
    image_marker,
    raw_renders,
    raw_text,
    render,
    user_content,
)
from model_server.backends.decode_loop import (  # noqa: E402
    Decoder,
    Row,
    eos_ids,
    one_d_positions,
)
from model_server.backends.janus_images import ImageRow, ImageSampler, image_tokens  # noqa: E402
from model_server.backends.local_settings import JanusSettings  # noqa: E402
from model_server.backends.torch_device import pick_device, pick_dtype  # noqa: E402
from model_server.fingerprint import fingerprint_dir  # noqa: E402
from serving.errors import InvalidRequest  # noqa: E402

log = logging.getLogger(__name__)

class JanusBackend(Backend[ScoreTask]):
    def __init__(self, model: str, settings: JanusSettings | None = None):
        from transformers import AutoProcessor, JanusForConditionalGeneration

        settings = settings or JanusSettings()
        if not model:
            raise ValueError("janus backend needs --model DIR")
        self.model_dir = Path(model)
        self.device = torch.device(pick_device(settings.device))
        self.dtype = pick_dtype(settings.dtype, self.device.type)
        self.cfg_weight = settings.cfg_weight
        self.image_temperature = settings.image_temperature
        self.max_images = settings.max_images
        self.model = JanusForConditionalGeneration.from_pretrained(
            self.model_dir, dtype=self.dtype).to(self.device).eval()
        self.processor = AutoProcessor.from_pretrained(self.model_dir)
        self.tokenizer = self.processor.tokenizer
        ip = self.processor.image_processor
        self._mean = torch.tensor(ip.image_mean, dtype=torch.float32)
        self._std = torch.tensor(ip.image_std, dtype=torch.float32)
        self.settings = {"cfg_weight": self.cfg_weight, "image_temperature": self.image_temperature}
        self._fp = fingerprint_dir(self.model_dir, extra=json.dumps(
            {**self.settings, "dtype": str(self.dtype)}, sort_keys=True))
        self.image_marker = image_marker(self._apply_template)  # for raw prompts
        self._tokenizer_lock = threading.Lock()  # admission tokenises in worker threads
        self.context_tokens = (settings.max_context_tokens
                               or self.model.config.text_config.max_position_embeddings)
        self.max_option_tokens = settings.max_option_tokens
        self._max_token_chars = max((len(t) for t in self.tokenizer.get_vocab()), default=1)
        self.generated_image_tokens = self.model.config.vision_config.num_image_tokens
        self._mode_tokens, self._image_tokens = self._measure_processor()
        self.max_batch_tokens = settings.max_batch_tokens
        pad = self.model.generation_config.pad_token_id
        pad = self.tokenizer.pad_token_id if pad is None else pad
        self.decoder = Decoder(self.model, pad, eos_ids(self.model, self.tokenizer), one_d_positions)
        gc = self.model.generation_config
        self._image_sampler = ImageSampler(self.cfg_weight, self.image_temperature,
                                           self.decoder.sampling)
        self._gen_ids = (pad, gc.bos_token_id, gc.generation_kwargs["boi_token_id"])

    def info(self) -> BackendInfo:
        vc = self.model.config.vision_config
        return BackendInfo(
            name=self.model_dir.name, backend="janus", fingerprint=self._fp, can_score=True,
            can_generate=True, can_generate_image=True, max_images=self.max_images,
            context_tokens=self.context_tokens, max_option_tokens=self.max_option_tokens,
            details={
                "architecture": "janus", "device": str(self.device),
                "dtype": str(self.dtype).removeprefix("torch."),
                "cfg_weight": str(self.cfg_weight),
                "image_temperature": str(self.image_temperature),
                "image_tokens": str(vc.num_image_tokens),
                "image_conditioning": "input images enter the prompt as vision-encoder features",
                "score_reduction": "sum of option token log-probs (count returned)",
                "prefix_sharing": "false",
                "generation": "batched (rows stop on their own)",
                "context_tokens": str(self.context_tokens),
                "max_option_tokens": str(self.max_option_tokens),
            },
        )

    # -- prompt building ---------------------------------------------------

    def _apply_template(self, msgs, **kw) -> str:
        return self.processor.apply_chat_template(msgs, **kw)

    def _render(self, text: str, n_images: int, answer: str | None = None) -> str:
        messages = [{"role": "user", "content": user_content(text, n_images)}]
        if answer is None:
            return self.processor.apply_chat_template(messages, add_generation_prompt=True)
        messages.append({"role": "assistant", "content": [{"type": "text", "text": answer}]})
        return self.processor.apply_chat_template(messages)

    def _inputs(self, prompt: str, images: Sequence[Image.Image], mode: str = "text") -> dict:
        bos = self.tokenizer.bos_token or ""
        with self._tokenizer_lock:
            inputs = self.processor(
                text=prompt, images=list(images) or None, generation_mode=mode,
                return_tensors="pt", add_special_tokens=not (bos and prompt.startswith(bos)),
            )
        out = {k: v.to(self.device) for k, v in inputs.items()}
        if "pixel_values" in out:
            out["pixel_values"] = out["pixel_values"].to(self.dtype)
        return out

    # -- admission ---------------------------------------------------------

    def _count(self, text: str) -> int:
        """Tokens of `text` as `_inputs` tokenises it, image placeholders unexpanded."""
        bos = self.tokenizer.bos_token or ""
        with self._tokenizer_lock:
            return len(self.tokenizer(text, add_special_tokens=not (bos and text.startswith(bos)))
                       ["input_ids"])

    def _measure_processor(self) -> tuple[dict[str, int], int]:
        """What the processor adds beyond the tokenizer, measured once: per generation mode
        (e.g. the begin-of-image token image mode appends) and per image (its fixed image
        tokens and their delimiters, minus the placeholder they replace)."""
        no_image, one_image = self._render("x", 0), self._render("x", 1)
        mode_tokens = {mode: self._inputs(no_image, [], mode)["input_ids"].shape[1]
                       - self._count(no_image) for mode in ("text", "image")}
        side = self.model.config.vision_config.image_size
        with_image = self._inputs(one_image, [Image.new("RGB", (side, side))])
        image_tokens = (with_image["input_ids"].shape[1] - self._count(one_image)
                        - mode_tokens["text"])
        return mode_tokens, image_tokens

    def _prompt_tokens(self, prompt: str, n_images: int, mode: str = "text") -> int:
        return self._count(prompt) + self._mode_tokens[mode] + n_images * self._image_tokens

    def admit(self, task: ScoreTask | GenerateTask | GenerateImageTask) -> None:
        """Prompt tokens (images expanded) + the answer against the context; options x the
        longest option against max_option_tokens. A huge text is refused untokenised."""
        n = len(task.images)
        check_text_size(task.text, self._max_token_chars, self.context_tokens)
        if isinstance(task, ScoreTask):
            longest = check_option_budget(
                [self._count_plain(o) for o in task.options], self.max_option_tokens)
            prompt = (raw_text(task.text, n, self.image_marker) if task.raw_prompt
                      else self._render(task.text, n))
            check_context(self._prompt_tokens(prompt, n), longest, "the longest option",
                          self.context_tokens)
            return
        prompt = self._render(task.text, n)
        if isinstance(task, GenerateImageTask):
            check_context(self._prompt_tokens(prompt, n, "image"), self.generated_image_tokens,
                          "the generated image's tokens", self.context_tokens)
            if not task.with_text:
                return
        check_context(self._prompt_tokens(prompt, n), task.max_new_tokens, "max_new_tokens",
                      self.context_tokens)

    def _count_plain(self, text: str) -> int:
        with self._tokenizer_lock:
            return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    # -- scoring -----------------------------------------------------------

    @torch.no_grad()
    def score(self, tasks: Sequence[ScoreTask]) -> list[ScoreResult]:
        return each_or_error(tasks, self._score_task)

    def _score_task(self, t: ScoreTask) -> list[OptionScore]:
        if t.raw_prompt:
            rendered = raw_renders(t, self.image_marker, self.tokenizer.eos_token)
        else:
            rendered = [render(self._apply_template, t.text, len(t.images), opt)
                        for opt in t.options]
        return [self._score_option(t, opt, r) for opt, r in zip(t.options, rendered, strict=True)]

    def _score_option(self, task: ScoreTask, option: str, r) -> OptionScore:
        """Sum log p(option tokens | user turn): one forward over prompt + answer.

        `r` holds the rendered texts (chat template, or raw prompt + option).
        The same answer-token rule as the hf backend (chat_prompt.answer_span):
        scoring starts where the tokenisation departs from the prompt's, and
        include_end_of_turn adds the one end-of-turn token after the answer.
        """
        ids = {name: self._inputs(text, task.images)
               for name, text in (("prompt", r.prompt), ("answer", r.answer_end), ("full", r.full))}
        tokens = {name: enc["input_ids"][0].tolist() for name, enc in ids.items()}
        seq, begin, end = answer_span(tokens["prompt"], tokens["answer"],
                                      tokens["full"] if task.include_end_of_turn else None,
                                      task.include_end_of_turn)
        if end <= begin:
            raise InvalidRequest("options", f"option {option!r} adds no tokens")
        inputs = ids["full" if task.include_end_of_turn else "answer"]
        logits = self.model(**inputs).logits[0, begin - 1:end - 1].float()
        target = torch.tensor(seq[begin:end], device=logits.device)
        total = torch.log_softmax(logits, dim=-1).gather(1, target[:, None]).sum().item()
        return OptionScore(logprob_sum=float(total), num_tokens=end - begin)

    # -- text generation ---------------------------------------------------

    def _text_row(self, text: str, images: Sequence[Image.Image], max_new_tokens: int,
                  temperature: float, seed: int, deadline: float | None) -> Row:
        return Row(self._inputs(self._render(text, len(images)), images), max_new_tokens,
                   temperature, seed, deadline)

    def _texts(self, rows: Sequence[Row | Exception]) -> list[str | Exception]:
        return self.decoder.texts(rows, self.max_batch_tokens, lambda ids: self.tokenizer.decode(
            ids, skip_special_tokens=True))

    def generate_batch(self, tasks: Sequence[GenerateTask]) -> list[GenerateResult]:
        """Text for a batch of prompts (decode_loop: each row as if alone, its own stops,
        deadline and seed); a row cut at its deadline is refused alone."""
        return self._texts(each_or_error(tasks, lambda t: self._text_row(
            t.text, t.images, t.max_new_tokens, t.temperature, t.seed, t.deadline)))

    def generate(self, task: GenerateTask) -> str:
        return _raised(self.generate_batch([task])[0])

    # -- image generation --------------------------------------------------

    def _image_row(self, task: GenerateImageTask) -> ImageRow:
        inputs = self._inputs(self._render(task.text, len(task.images)), task.images, mode="image")
        return ImageRow(inputs, task.seed, task.deadline)

    def _png(self, tokens: torch.Tensor) -> bytes:
        """One image's tokens through the VQ decoder, alone (its bytes never depend on a batch)."""
        pixels = self.model.decode_image_tokens(tokens[None])[0].float().cpu()  # H, W, C
        pixels = ((pixels * self._std + self._mean) * 255.0).round().clamp(0, 255).to(torch.uint8)
        buf = io.BytesIO()
        Image.fromarray(pixels.numpy(), "RGB").save(buf, format="PNG")
        return buf.getvalue()

    @torch.no_grad()
    def generate_image_batch(self, tasks: Sequence[GenerateImageTask]
                             ) -> list[GeneratedImage | Exception]:
        """The images of a batch of requests (janus_images: classifier-free guidance pairs,
        each image as if alone; one past its deadline aborted with DeadlinePassed, half an
        image being no answer), then the with_text requests' texts, batched the same way
        and refused at the deadline too."""
        rows = each_or_error(tasks, self._image_row)
        made = [r for r in rows if isinstance(r, ImageRow)]
        tokens = iter(image_tokens(self.model, made, self._image_sampler, self._gen_ids)
                      if made else ())
        images = [next(tokens) if isinstance(r, ImageRow) else r for r in rows]
        pngs = each_or_error(images, lambda t: t if isinstance(t, Exception) else self._png(t))
        wanted = [i for i, (t, p) in enumerate(zip(tasks, pngs, strict=True))
                  if t.with_text and not isinstance(p, Exception)]
        texts = dict(zip(wanted, self._texts(each_or_error(
            [tasks[i] for i in wanted], lambda t: self._text_row(
                t.text, t.images, t.max_new_tokens, 0.0, t.seed, t.deadline))), strict=True))
        out: list[GeneratedImage | Exception] = []
        for i, p in enumerate(pngs):
            text = texts.get(i, "")
            out.append(p if isinstance(p, Exception) else text if isinstance(text, Exception)
                       else GeneratedImage(png=p, text=text))
        return out

    def generate_image(self, task: GenerateImageTask) -> GeneratedImage:
        return _raised(self.generate_image_batch([task])[0])


def _raised(result):
    """One task's result, or its error raised."""
    if isinstance(result, Exception):
        raise result
    return result
