"""Score inputs for requests that follow a reference interface's recipe (hf backend).

The evaluator sends a reference preset's rules as typed ScoreRequest fields
(score_recipe.Recipe, ImagePrep): the sequence `prompt + option_prefix + option
+ option_suffix` with each image written as the template's marker or the
model's bare image token, tokenised whole or piece by piece around the images,
the window (scoring_window) and the image preprocessing (the model's processor
or image_preprocess.squash). Here those become the same inputs the served
strategies take (SharedInputs for prefix sharing and packing, or one encoding
per option), so a recipe is scored by the same per-option, cache-copy and
packed paths as any request.

Token ids are built here, with one image token per image, and the images'
token blocks are spliced in afterwards: the processor is asked only for the
images (how many tokens each becomes, and the pixel tensors), never to
tokenise the text, so the text's tokens are exactly the recipe's.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import dataclass

import torch

from model_server.backends.base import ScoreTask
from model_server.backends.chat_prompt import answer_span, common_prefix_len, raw_text
from model_server.backends.hf_inputs import CannotShare, InputBuilder, SharedInputs
from model_server.backends.image_preprocess import SQUASHABLE, squash, squashed_images, tower_size
from model_server.backends.score_recipe import (
    LAST_OPTION_LENGTH,
    LENGTH_DIFFERENCE,
    MODEL_PROCESSOR,
    MODEL_TOKEN,
    OPTION_TOKENS,
    SPLIT_AT_IMAGES,
    SQUASH,
    TEMPLATE_MARKER,
    WHOLE,
    ScoreFeatures,
)
from model_server.backends.scoring_window import check_clear_of_images, last_tokens
from serving.errors import InvalidRequest

# Model types whose image token stands alone in the text, expanded in place by the processor
# (LLaVA's "<image>"); others need the template's markers around it (Qwen2-VL's vision start/end).
BARE_IMAGE_TOKEN = {"llava"}
Span = tuple[list[int], int, int]  # (token ids, first scored, end), one image token per image


@dataclass
class ImageInputs:
    """A question's images as the model takes them."""

    counts: list[int]  # tokens each image becomes
    blocks: list[dict[str, torch.Tensor]]  # per image: its per-token tensors (e.g. mm_token_type_ids)
    per_token: list[str]  # names of the per-token tensors besides input_ids and attention_mask
    tensors: dict[str, torch.Tensor]  # pixel tensors, grids


class RecipeInputs:
    """Builds recipe requests' inputs for one model directory, with its InputBuilder's
    tokenizer, processor and lock."""

    def __init__(self, builder: InputBuilder, config):
        self.b = builder
        self.model_type = config.model_type
        self.tower = tower_size(config) if self.model_type in SQUASHABLE else 0
        self.image_token = getattr(builder.processor, "image_token", None)
        self.image_token_id = builder.image_token_id
        self.bos_id = builder.tokenizer.bos_token_id

    def features(self) -> ScoreFeatures:
        """What this model's Score honours (Info.capabilities.score_features)."""
        image_texts, prep, unsupported = {TEMPLATE_MARKER}, {MODEL_PROCESSOR}, {}
        if self.model_type in BARE_IMAGE_TOKEN and self.image_token:
            image_texts.add(MODEL_TOKEN)
        else:
            unsupported["image_text"] = (f"{self.model_type} images need the chat template's own "
                                         "image markers around the image token")
        if self.tower:
            prep.add(SQUASH)
        else:
            unsupported["image_preprocessing"] = (
                f"the {self.model_type} processor makes no fixed-size pixel tensor that a "
                "squashed image could replace")
        return ScoreFeatures(
            windows=frozenset({OPTION_TOKENS, LAST_OPTION_LENGTH, LENGTH_DIFFERENCE}),
            preprocessing=frozenset(prep), image_texts=frozenset(image_texts),
            tokenizations=frozenset({WHOLE, SPLIT_AT_IMAGES}), option_affixes=True,
            unsupported=unsupported)

    # ------------------------------------------------------------- text to tokens
    def tokens(self, text: str, split: bool) -> list[int]:
        """The text's ids; `split`: each piece between image tokens tokenised on its own, the
        leading BOS kept on the first piece only (LLaVA's tokenizer_image_token)."""
        if not split:
            return self.b.tokens(text)
        pieces = text.split(self.image_token)
        ids = self.b.tokens(pieces[0])
        for piece in pieces[1:]:
            more = self.b.tokens(piece)
            if self.bos_id is not None and more[:1] == [self.bos_id]:
                more = more[1:]
            ids += [self.image_token_id, *more]
        return ids

    def prompt_text(self, task: ScoreTask) -> str:
        """The raw prompt with its images written as the recipe says (all first without <img>)."""
        image_text = task.recipe.image_text if task.recipe else TEMPLATE_MARKER
        marker = self.image_token if image_text == MODEL_TOKEN else self.b.image_marker
        if task.images and not marker:
            raise InvalidRequest("raw_prompt", "this model's chat template writes no image marker, "
                                 "so images cannot be placed in a raw prompt")
        return raw_text(task.text, len(task.images), marker or "")

    def spans(self, task: ScoreTask) -> list[Span]:
        """Per option: the ids to run and the window to score (one image token per image)."""
        if task.recipe is None:  # the original fields only (a squash-preprocessed request)
            return self.b.spans(task)[2]
        r = task.recipe
        split = r.tokenization == SPLIT_AT_IMAGES
        prompt = self.prompt_text(task)
        prompt_ids = self.tokens(prompt, split) if r.window != LAST_OPTION_LENGTH else []
        out = []
        for i, option in enumerate(task.options):
            answer = prompt + r.option_prefix + option
            if r.window == LAST_OPTION_LENGTH:
                span = last_tokens(self.tokens(answer + r.option_suffix, split),
                                   len(self.b.tokens(option)),
                                   f"len(tokenizer(options[{i}]).input_ids)")
            elif r.window == LENGTH_DIFFERENCE:
                ids = self.tokens(answer, split)
                span = last_tokens(ids, len(ids) - len(prompt_ids),
                                   f"the length difference for options[{i}]")
            else:
                eos = self.b.tokenizer.eos_token
                if task.include_end_of_turn and not eos:
                    raise InvalidRequest("include_end_of_turn", "the tokenizer has no "
                                         "end-of-sequence token to score after the option")
                full = self.tokens(answer + eos, split) if task.include_end_of_turn else None
                span = answer_span(prompt_ids, self.tokens(answer, split), full,
                                   task.include_end_of_turn)
            check_clear_of_images(span[0], span[1], self.image_token_id)
            out.append(span)
        return out

    # ---------------------------------------------------------------- images
    def images(self, task: ScoreTask) -> ImageInputs:
        """The images' token counts and tensors: the processor's, or squashed pixels."""
        if not task.images:
            return ImageInputs([], [], [], {})
        prep = task.image_prep
        size = prep.size or self.tower
        shown = squashed_images(task.images, size) if prep.mode == SQUASH else list(task.images)
        text = (self.image_token + "\n") * len(shown)
        try:
            with self.b.locked():
                enc = self.b.processor(text=[text], images=shown, return_tensors="pt")
        except (ValueError, TypeError) as exc:
            raise InvalidRequest("prompt.images", f"the processor refused them: {exc}") from None
        ids = enc["input_ids"][0]
        n = ids.shape[0]
        is_image = (ids == self.image_token_id).tolist()
        runs, k = [], 0
        while k < n:
            if is_image[k]:
                start = k
                while k < n and is_image[k]:
                    k += 1
                runs.append((start, k - start))
            k += 1
        per_token = [key for key, v in enc.items() if isinstance(v, torch.Tensor) and v.dim() >= 2
                     and v.shape[:2] == (1, n) and key not in ("input_ids", "attention_mask")]
        tensors = {key: v for key, v in enc.items() if isinstance(v, torch.Tensor)
                   and key not in per_token and key not in ("input_ids", "attention_mask")}
        if prep.mode == SQUASH:
            tensors["pixel_values"] = squash(task.images, size, prep.mean, prep.std)
        blocks = [{key: enc[key][0, s:s + c] for key in per_token} for s, c in runs]
        return ImageInputs([c for _, c in runs], blocks, per_token, tensors)

    def expand(self, ids: list[int], imgs: ImageInputs) -> dict[str, torch.Tensor]:
        """Host tensors for `ids` (batch 1): each image token replaced by its image's block."""
        places = [k for k, t in enumerate(ids) if t == self.image_token_id]
        if len(places) != len(imgs.counts):
            raise InvalidRequest("prompt.text", f"becomes {len(places)} image tokens for "
                                 f"{len(imgs.counts)} images (the model's image token written "
                                 "as text?)")
        pieces: dict[str, list[torch.Tensor]] = {key: [] for key in ("input_ids", *imgs.per_token)}
        last = 0
        for j, at in enumerate([*places, len(ids)]):
            text = torch.tensor(ids[last:at], dtype=torch.long)
            pieces["input_ids"].append(text)
            for key in imgs.per_token:
                pieces[key].append(torch.zeros(len(text), dtype=imgs.blocks[0][key].dtype))
            if at < len(ids):
                pieces["input_ids"].append(torch.full((imgs.counts[j],), self.image_token_id))
                for key in imgs.per_token:
                    pieces[key].append(imgs.blocks[j][key])
            last = at + 1
        out = {key: torch.cat(parts)[None] for key, parts in pieces.items()}
        out["attention_mask"] = torch.ones_like(out["input_ids"])
        return {**out, **imgs.tensors}

    # ------------------------------------------------------------ the served paths
    def option_inputs(self, task: ScoreTask) -> Iterator[tuple[dict, int, int]]:
        """Per option: the model's inputs on the device and the window in their coordinates."""
        imgs = self.images(task)
        for seq, begin, end in self.spans(task):
            enc = self.b.to_device_inputs(self.expand(seq, imgs))
            shift = enc["input_ids"].shape[1] - len(seq)  # every image lies before the window
            yield enc, begin + shift, end + shift

    def shared(self, task: ScoreTask, ahead: bool = False) -> SharedInputs:
        """The tokens all options share (images included) encoded once, and each option's
        tokens after them; CannotShare where an option departs before the last image."""
        spans = self.spans(task)
        first = spans[0][0]
        shared = min(min(b for _, b, _ in spans), min(common_prefix_len(s, first) for s, _, _ in spans))
        places = [k for k, t in enumerate(first) if t == self.image_token_id]
        if shared < 1 or (places and shared <= places[-1]):
            raise CannotShare("the options depart from each other before the last image")
        imgs = self.images(task)
        stream = self.b.prepare_stream if ahead else None
        with stream.running() if stream else nullcontext():
            prefix = self.b.to_device_inputs(self.expand(first[:shared], imgs))
            ready = stream.ready() if stream else None
        return SharedInputs(prefix, [s[shared:] for s, _, _ in spans],
                            [(b - shared, e - shared) for _, b, e in spans], ready)
