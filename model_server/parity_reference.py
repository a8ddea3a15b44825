"""The naive reference the parity check compares the served path against.

For each option: build the whole sequence straight from the request's recipe,
run ONE full forward pass over it, and sum the log-probabilities of the
window's tokens. No prefix sharing, packing or batching, and none of the served
path's prompt code (chat_prompt, reference_prompt, scoring_window,
image_preprocess, hf_inputs): the texts come from the model's processor and
chat template called directly, the windows are counted here on the expanded
ids, and squashed pixels come from torchvision's own transforms (the pipeline
the reference interfaces wrote). Slow on purpose; simple enough to read
against protos/seedbench.proto.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from PIL import Image
from torchvision import transforms
from torchvision.transforms import InterpolationMode

from model_server.backends.base import ScoreTask
from protos import seedbench_pb2 as pb

PLACEHOLDER = "<img>"


def squash_pixels(images: Sequence[Image.Image], size: int, mean, std) -> torch.Tensor:
    """torchvision: Resize((size, size), BICUBIC), ToTensor, Normalize (the interfaces' own)."""
    pipeline = transforms.Compose([transforms.Resize((size, size),
                                                     interpolation=InterpolationMode.BICUBIC),
                                   transforms.ToTensor(), transforms.Normalize(mean, std)])
    return torch.stack([pipeline(im.convert("RGB")) for im in images])


def shared_length(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


class NaiveScorer:
    """One full forward per option for a ScoreTask, from the recipe and the model alone."""

    def __init__(self, model, processor, config):
        self.model = model
        self.processor = processor
        self.tok = processor.tokenizer
        self.image_token = processor.image_token
        self.image_id = self.tok.convert_tokens_to_ids(self.image_token)
        vision = getattr(config, "vision_config", None)
        self.tower = int(getattr(vision, "image_size", 0) or 0)
        self.device = next(model.parameters()).device
        self.dtype = next(model.parameters()).dtype

    # -------------------------------------------------------------- texts
    def _user(self, text: str, n: int) -> list[dict]:
        if PLACEHOLDER not in text:
            return [{"type": "image"}] * n + [{"type": "text", "text": text}]
        parts = []
        for i, piece in enumerate(text.split(PLACEHOLDER)):
            if i:
                parts.append({"type": "image"})
            if piece:
                parts.append({"type": "text", "text": piece})
        return parts

    def _chat(self, text: str, n: int, option: str | None, **kw) -> str:
        msgs = [{"role": "user", "content": self._user(text, n)}]
        if option is not None:
            msgs.append({"role": "assistant", "content": [{"type": "text", "text": option}]})
        return self.processor.apply_chat_template(msgs, tokenize=False, **kw)

    def _marker(self) -> str:
        """What the chat template writes for one image: the text a one-image user turn has
        beyond the same turn without it."""
        a = self._chat("Q", 1, None, add_generation_prompt=True)
        b = self._chat("Q", 0, None, add_generation_prompt=True)
        head = shared_length(a, b)
        tail = shared_length(a[::-1], b[::-1])
        return a[head:len(a) - min(tail, len(a) - head)]

    def _raw(self, task: ScoreTask) -> str:
        use_token = task.recipe is not None and task.recipe.image_text == pb.IMAGE_TEXT_MODEL_TOKEN
        image = self.image_token if use_token else self._marker()
        if PLACEHOLDER in task.text:
            return task.text.replace(PLACEHOLDER, image)
        return image * len(task.images) + task.text

    # ------------------------------------------------------------ tensors
    def _pixels(self, task: ScoreTask) -> tuple[list, torch.Tensor | None]:
        """The images handed to the processor, and squashed pixels to put in its place."""
        prep = task.image_prep
        if prep.mode != pb.ImagePreprocessing.MODE_SQUASH or not task.images:
            return list(task.images), None
        size = prep.size or self.tower
        resized = [im.convert("RGB").resize((size, size), Image.BICUBIC) for im in task.images]
        return resized, squash_pixels(task.images, size, list(prep.mean), list(prep.std))

    def _encode(self, text: str, task: ScoreTask, split: bool) -> dict[str, torch.Tensor]:
        images, squashed = self._pixels(task)
        kw = {"images": images} if images else {}
        enc = dict(self.processor(text=[text], return_tensors="pt", **kw))
        if split:  # LLaVA's tokenizer_image_token: every piece alone, BOS on the first only
            pieces = [self.tok(p).input_ids for p in text.split(self.image_token)]
            bos = self.tok.bos_token_id
            offset = 1 if bos is not None and pieces[0][:1] == [bos] else 0
            ids = list(pieces[0])
            for im, piece in zip(images, pieces[1:], strict=True):
                ids += [self.image_id] * self._tokens_of(im) + list(piece[offset:])
            enc["input_ids"] = torch.tensor([ids])
            enc["attention_mask"] = torch.ones_like(enc["input_ids"])
        if squashed is not None:
            enc["pixel_values"] = squashed
        return {k: v.to(self.device, self.dtype) if v.is_floating_point() else v.to(self.device)
                for k, v in enc.items() if isinstance(v, torch.Tensor)}

    def _tokens_of(self, image: Image.Image) -> int:
        """How many tokens the processor makes of this image alone."""
        ids = self.processor(text=[self.image_token], images=[image], return_tensors="pt")["input_ids"]
        return int((ids == self.image_id).sum())

    # ------------------------------------------------------------- scoring
    def _windowed(self, task: ScoreTask, option: str) -> tuple[dict, int, int]:
        """The inputs to run and the scored [begin, end) on the expanded ids."""
        n = len(task.images)
        if not task.raw_prompt:
            prompt = self._chat(task.text, n, None, add_generation_prompt=True)
            answer = self._chat(task.text, n, option, continue_final_message=True)
            full = self._chat(task.text, n, option)
            return self._from_departure(task, prompt, answer, full, split=False)
        r = task.recipe
        split = r is not None and r.tokenization == pb.PROMPT_TOKENIZATION_SPLIT_AT_IMAGES
        prefix, suffix = (r.option_prefix, r.option_suffix) if r else ("", "")
        prompt = self._raw(task)
        answer = prompt + prefix + option
        window = r.window if r else pb.SCORING_WINDOW_OPTION_TOKENS
        if window == pb.SCORING_WINDOW_LAST_OPTION_LENGTH:
            enc = self._encode(answer + suffix, task, split)
            total = enc["input_ids"].shape[1]
            return enc, total - len(self.tok(option).input_ids), total
        if window == pb.SCORING_WINDOW_LENGTH_DIFFERENCE:
            enc = self._encode(answer, task, split)
            total = enc["input_ids"].shape[1]
            before = self._encode(prompt, task, split)["input_ids"].shape[1]
            return enc, before, total
        full = answer + (self.tok.eos_token or "")
        return self._from_departure(task, prompt, answer, full, split)

    def _from_departure(self, task, prompt: str, answer: str, full: str,
                        split: bool) -> tuple[dict, int, int]:
        p = self._encode(prompt, task, split)["input_ids"][0].tolist()
        a_enc = self._encode(answer, task, split)
        a = a_enc["input_ids"][0].tolist()
        if not task.include_end_of_turn:
            return a_enc, max(1, shared_length(p, a)), len(a)
        f_enc = self._encode(full, task, split)
        end = shared_length(a, f_enc["input_ids"][0].tolist()) + 1
        return f_enc, max(1, shared_length(p, a)), end

    @torch.inference_mode()
    def score(self, task: ScoreTask) -> list[tuple[float, int]]:
        """(summed log-probability, tokens) per option, one full forward each."""
        out = []
        for option in task.options:
            enc, begin, end = self._windowed(task, option)
            logits = self.model(**enc).logits[0].float()
            logp = torch.log_softmax(logits[begin - 1:end - 1], dim=-1)
            ids = enc["input_ids"][0, begin:end]
            out.append((float(logp.gather(-1, ids[:, None]).sum()), end - begin))
        return out
