"""A question as the hf backend's model inputs: chat template, tokens, images.

All of it is CPU work plus host-to-device copies and needs no model: on
accelerators it runs in the server's prepare threads ahead of the device, and
benchmarks use it to count a question's tokens. The tokenizer and processor are
entered from several threads (prepare threads, the device thread); fast
tokenizers must not be entered concurrently, hence one lock around them.
"""

from __future__ import annotations

import threading
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image
from transformers import AutoProcessor

from model_server.backends.base import GenerateImageTask, GenerateTask, ScoreTask, each_or_error
from model_server.backends.chat_prompt import (
    answer_span,
    image_marker,
    messages,
    raw_renders,
    raw_text,
    render,
)
from model_server.backends.host_to_device import (
    PrepareStream,
    image_tensors,
    processor_takes_device,
    to_device,
    wait_ready,
)
from model_server.backends.processor_rows import split_rows
from model_server.backends.template_cache import TemplateCache
from model_server.stage_times import StageTimes, stage
from serving.errors import InvalidRequest


@dataclass
class SharedInputs:
    """One question made ready for prefix-shared scoring (packed or cache copy)."""

    prefix: dict[str, torch.Tensor]  # processor outputs sliced to the shared prefix (batch 1)
    conts: list[list[int]]           # per option: tokens after the shared prefix
    spans: list[tuple[int, int]]     # per option: scored range in continuation coordinates
    ready: object = None  # CUDA event: prepared on the prepare stream (wait_until_ready)

    def wait_until_ready(self) -> None:
        """Call on the device thread before using `prefix` (a no-op unless prepared ahead on CUDA)."""
        wait_ready(self.ready, self.prefix.values())
        self.ready = None


@dataclass
class PromptInputs:
    """A generation prompt made ready: the processor's tensors (batch 1) on the device."""

    enc: dict[str, torch.Tensor]
    ready: object = None  # CUDA event: prepared on the prepare stream (wait_until_ready)

    def wait_until_ready(self) -> None:
        """Call on the device thread before using `enc` (a no-op unless prepared ahead on CUDA)."""
        wait_ready(self.ready, self.enc.values())
        self.ready = None


class CannotShare(Exception):
    """The question's options cannot share one encoded prefix; score them one by one."""


class InputBuilder:
    """Renders, tokenises and preprocesses questions for one model directory."""

    def __init__(self, path: Path, device: str, dtype: torch.dtype, images_on_device: bool):
        self.device, self.dtype = device, dtype
        self.processor = AutoProcessor.from_pretrained(path)
        self.tokenizer = self.processor.tokenizer
        self.image_token_id = getattr(self.processor, "image_token_id", None)
        if self.image_token_id is None and getattr(self.processor, "image_token", None):
            self.image_token_id = self.tokenizer.convert_tokens_to_ids(self.processor.image_token)
        self.pad_id = self.tokenizer.pad_token_id
        if self.pad_id is None:
            self.pad_id = self.tokenizer.eos_token_id or 0
        self.images_on_device = images_on_device and processor_takes_device(self.processor)
        if self.images_on_device:
            self.image_note = f"on {device} (uint8 pixels, resized and normalised there)"
        elif images_on_device:
            self.image_note = "cpu (the image processor takes no device)"
        else:
            self.image_note = "cpu"
        self._lock = threading.RLock()
        self._rendered = TemplateCache(self._render)
        self._prepare_stream = PrepareStream(device)
        self.stage_times: StageTimes | None = None  # benchmarks set it to see where time goes
        self.image_marker = image_marker(self.template)  # for raw prompts (no chat template)
        # No token covers more characters than the longest vocabulary entry, so a text
        # longer than context x this is refused without tokenising it (a 10 MB prompt).
        self.max_token_chars = max((len(t) for t in self.tokenizer.get_vocab()), default=1)
        self._image_tokens: dict[tuple[int, int], int] = {}  # tokens one image adds, by size

    # ------------------------------------------------------------ text
    def template(self, msgs, **kw) -> str:
        """The chat template's text for `msgs` (template_cache: a repeated render is free)."""
        with stage(self.stage_times, "chat template"):
            return self._rendered(msgs, **kw)

    def _render(self, msgs, **kw) -> str:
        with self._lock:
            return self.processor.apply_chat_template(msgs, tokenize=False, **kw)

    def tokens(self, text: str) -> list[int]:
        with self._lock, stage(self.stage_times, "tokenise"):
            return self.tokenizer(text)["input_ids"]

    def plain_tokens(self, text: str) -> list[int]:
        """Tokens of a text on its own (no special tokens): an option's length."""
        with self._lock:
            return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def decode(self, ids) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    def locked(self):
        """The lock around the tokenizer and processor (for companions such as reference_prompt)."""
        return self._lock

    @property
    def prepare_stream(self) -> PrepareStream:
        return self._prepare_stream

    def to_device_inputs(self, enc: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Host tensors on the model's device (floating ones in the model's dtype)."""
        return self._to_device(enc)

    # ---------------------------------------------------------- images
    def encode(self, text: str, images) -> dict[str, torch.Tensor]:
        """The processor's tensors for `text` with its images, on the model's device (for use
        on the calling thread)."""
        return self._to_device(self._process(text, images))

    def _to_device(self, enc: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        with stage(self.stage_times, "host-to-device copy"):
            return {k: to_device(v, self.device, self.dtype) for k, v in enc.items()}

    def _process(self, text: str, images) -> dict[str, torch.Tensor]:
        """The processor's tensors: token tensors on the host, pixels on the device when
        images are preprocessed there."""
        return self._process_many([text], list(images))

    def _process_many(self, texts: list[str], images: list) -> dict[str, torch.Tensor]:
        """One processor call for `texts` (their images in order; several texts padded)."""
        kw = {"text": texts, "return_tensors": "pt"}
        if len(texts) > 1:
            kw["padding"] = True
        if images and self.images_on_device:
            with stage(self.stage_times, "host-to-device copy"):
                kw["images"] = image_tensors(images, self.device)
            kw["device"] = self.device
        elif images:
            kw["images"] = images
        try:
            with self._lock, stage(self.stage_times, "image preprocessing + prompt tokens"):
                enc = self.processor(**kw)
        except (ValueError, TypeError) as exc:
            raise InvalidRequest("prompt", f"the processor refused it: {exc}") from None
        return {k: v for k, v in enc.items() if isinstance(v, torch.Tensor)}

    def image_cost(self, size: tuple[int, int]) -> int:
        """Tokens one image of this size adds beyond its placeholder token (measured once)."""
        cost = self._image_tokens.get(size)
        if cost is None:
            prompt = self.template(messages("x", 1), add_generation_prompt=True)
            with self._lock:
                enc = self.processor(text=[prompt], images=[Image.new("RGB", size)],
                                     return_tensors="pt")
            cost = max(0, enc["input_ids"].shape[1] - len(self.tokens(prompt)))
            self._image_tokens[size] = cost
        return cost

    # ------------------------------------------------------- questions
    def prompt_tokens(self, task: ScoreTask | GenerateTask | GenerateImageTask) -> int:
        """The prompt's tokens with every image expanded (admission), without preprocessing
        the images: what an image adds is measured once per size."""
        n = len(task.images)
        if getattr(task, "raw_prompt", False):
            prompt = raw_text(task.text, n, self.image_marker or "")
        else:
            prompt = self.template(messages(task.text, n), add_generation_prompt=True)
        return len(self.tokens(prompt)) + sum(self.image_cost(im.size) for im in task.images)

    def spans(self, task: ScoreTask):
        """The rendered texts per option, the unexpanded prompt tokens, and per option the
        unexpanded (sequence, begin, end) to score."""
        n = len(task.images)
        if task.raw_prompt:
            rendered = raw_renders(task, self.image_marker, self.tokenizer.eos_token)
        else:
            rendered = [render(self.template, task.text, n, opt) for opt in task.options]
        prompt_ids = self.tokens(rendered[0].prompt)
        spans = []
        for r in rendered:
            full = self.tokens(r.full) if task.include_end_of_turn else None
            spans.append(answer_span(prompt_ids, self.tokens(r.answer_end), full,
                                     task.include_end_of_turn))
        return rendered, prompt_ids, spans

    def option_inputs(self, task: ScoreTask):
        """Per option (the per-option path): the model's inputs on the device and the scored
        range in their coordinates."""
        rendered, _, spans = self.spans(task)
        for r, (_seq, begin, end) in zip(rendered, spans, strict=True):
            text = r.full if task.include_end_of_turn else r.answer_end
            enc = self.encode(text, task.images)
            shift = enc["input_ids"].shape[1] - len(self.tokens(text))  # images expand before begin
            yield enc, begin + shift, end + shift

    def generation(self, task: GenerateTask, ahead: bool = False) -> PromptInputs:
        """The chat-templated prompt (user turn, then the assistant's turn opened) with its
        images, as the model's tensors on the device. `ahead`: as for `shared`."""
        prompt = self.template(messages(task.text, len(task.images)), add_generation_prompt=True)
        stream = self._prepare_stream if ahead else None
        with stream.running() if stream else nullcontext():
            enc = self._to_device(self._process(prompt, task.images))
            ready = stream.ready() if stream else None
        return PromptInputs(enc, ready)

    def generations(self, tasks: list[GenerateTask]) -> list[PromptInputs | Exception]:
        """`generation` for several tasks (on the calling thread) through one processor call
        (processor_rows); one call per task where that call fails or cannot be split, so
        a prompt the processor refuses fails alone (its error is its entry)."""
        prompts = [self.template(messages(t.text, len(t.images)), add_generation_prompt=True)
                   for t in tasks]
        rows = None
        if len(tasks) > 1:
            try:
                enc = self._process_many(prompts, [im for t in tasks for im in t.images])
                rows = split_rows(enc, [len(t.images) for t in tasks])
            except InvalidRequest:
                rows = None
        if rows is None:
            return each_or_error(tasks, self.generation)
        return [PromptInputs(self._to_device(r)) for r in rows]

    def shared(self, task: ScoreTask, ahead: bool = False) -> SharedInputs:
        """The question's prefix encoded once (images included) and each option's tokens after
        it. Raises CannotShare where the options' tokens reach into the images.

        `ahead`: called from a prepare thread; its device work goes to the prepare stream
        and the result must be `wait_until_ready()` on the device thread.
        """
        rendered, prompt_ids, spans = self.spans(task)
        shared = min(b for _, b, _ in spans)
        stream = self._prepare_stream if ahead else None
        with stream.running() if stream else nullcontext():
            prefix = self._prefix(rendered[0].prompt, task.images, prompt_ids, shared)
            ready = stream.ready() if stream else None
        conts = [seq[shared:] for seq, _, _ in spans]
        cspans = [(b - shared, e - shared) for _, b, e in spans]
        return SharedInputs(prefix, conts, cspans, ready)

    def _prefix(self, prompt: str, images, prompt_ids: list[int],
                shared: int) -> dict[str, torch.Tensor]:
        """The processor's tensors for the prompt, cut to its first `shared` (unexpanded)
        tokens, on the device."""
        enc = self._process(prompt, images)
        expanded = enc["input_ids"][0].tolist()  # still on the host: no device round trip
        # The prefix in expanded coordinates: image tokens all sit before `shared`,
        # and the prompt's tail after its last image token is identical text.
        img_positions = [k for k, t in enumerate(prompt_ids) if t == self.image_token_id]
        last_img = img_positions[-1] if img_positions else -1
        if shared <= last_img:
            raise CannotShare("answer boundary inside the image tokens")
        tail = len(prompt_ids) - last_img - 1
        if tail < 1 or expanded[-tail:] != prompt_ids[-tail:]:
            raise CannotShare("processor changed the prompt text around the images")
        cut = len(expanded) - (len(prompt_ids) - shared)
        seq_len = enc["input_ids"].shape[1]
        prefix = {}
        for k, v in enc.items():
            if v.dim() >= 2 and v.shape[0] == 1 and v.shape[1] == seq_len:
                prefix[k] = v[:, :cut]  # per-token tensors (ids, mask, token types)
            else:
                prefix[k] = v           # pixel tensors
        return self._to_device(prefix)  # sliced first: only the prefix travels
