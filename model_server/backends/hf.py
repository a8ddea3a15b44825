"""Transformers vision-language backend: loading, admission and dispatch.

For each option: the summed log-probability of the option's tokens given the
images and the question, rendered with the model's own chat template (user turn
= images + question, assistant turn = the option), or, for a raw prompt, the
text as sent with the option appended (chat_prompt.render_raw).

Three ways to compute it, with equal results, one module each:
- per-option (hf_reference): one full forward pass per option, the reference;
- packed (hf_packed; default where the architecture allows): one forward per
  batch over rows `prefix + option_1 + ... + option_k`, a 4-D mask keeping the
  options apart;
- cache copy (hf_cache_copy): the images and question are encoded once per
  question, then all options of all questions in the batch are scored in one
  forward over their continuations from copies of the shared key/value cache.
Generation: hf_generate. Inputs (template, tokens, images): hf_inputs.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import transformers
from transformers import AutoConfig

from model_server.backends.admission import check_context, check_option_budget, check_text_size
from model_server.backends.base import (
    Backend,
    BackendInfo,
    GenerateImageTask,
    GenerateResult,
    GenerateTask,
    OptionScore,
    ScoreResult,
    ScoreTask,
    each_or_error,
)
from model_server.backends.batch_groups import padded_groups
from model_server.backends.decode_loop import Decoder, eos_ids, mrope_positions, one_d_positions
from model_server.backends.hf_cache_copy import score_cache_copy
from model_server.backends.hf_generate import PlannedPrompt, generate_batch, plan
from model_server.backends.hf_inputs import CannotShare, InputBuilder, SharedInputs
from model_server.backends.hf_packed import MASKABLE_ATTENTION, row_length, score_packed
from model_server.backends.hf_reference import score_per_option
from model_server.backends.local_settings import HFSettings
from model_server.backends.reference_prompt import RecipeInputs
from model_server.backends.torch_device import pick_device, pick_dtype
from model_server.fingerprint import fingerprint_model_dir
from model_server.stage_times import StageTimes
from model_server.tiny import build_random, random_init_seed
from serving import environment

log = logging.getLogger(__name__)

# Architectures whose prefix sharing is implemented and tested, by position scheme.
ONE_D_ROPE = {"llava"}
MULTI_AXIS_ROPE = {"qwen2_vl", "qwen2_5_vl"}
# `packing=auto`: architectures scored packed on accelerators (tested against the
# reference); the others, and every model on a CPU, use the cache copy. On the CPU
# the cache copy measured faster (docs/performance.md: the packed forward computes
# its masked attention in full and builds the mask on the host); the benchmark
# measures both on every device as (b) and (b').
PACKED_BY_DEFAULT = {"llava", "qwen2_vl"}


@dataclass(frozen=True)
class Planned:
    """A question with its scoring plan, made by prepare (ahead) or on the device thread."""

    task: ScoreTask
    shared: SharedInputs | None  # None: score per option (sharing off or not applicable)


class HFBackend(Backend[ScoreTask | Planned]):
    """prepare returns a Planned task when it runs ahead (accelerators), else the ScoreTask
    unchanged, planned on the device thread."""

    def __init__(self, model: str, settings: HFSettings | None = None):
        settings = settings or HFSettings()
        if settings.threads > 0:  # CPU threads for this process (benchmarks pin replicas to cores)
            torch.set_num_threads(settings.threads)
        path = Path(model)
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"no config.json in model directory {model!r}")
        self.path = path
        self.device = pick_device(settings.device)
        self.dtype = pick_dtype(settings.dtype, self.device)
        config = AutoConfig.from_pretrained(path)
        self.model_type = config.model_type
        arch = (config.architectures or [None])[0]
        model_cls = getattr(transformers, arch, None) if arch else None
        if model_cls is None:
            model_cls = transformers.AutoModelForImageTextToText
        seed = random_init_seed(path)
        if seed is not None:  # a benchmark layout: random weights made on the device
            if self.device == "auto":
                self.device = pick_device("")
            self.model = build_random(model_cls, config, self.dtype, self.device, seed)
        elif self.device == "auto":  # shard a model too big for one device (needs accelerate)
            self.model = model_cls.from_pretrained(path, dtype=self.dtype, device_map="auto").eval()
            self.device = str(self.model.device)  # inputs go where the embeddings live
        else:
            self.model = model_cls.from_pretrained(path, dtype=self.dtype).to(self.device).eval()
        self.max_images = settings.max_images
        on_accelerator = not self.device.startswith("cpu")
        self.prepare_ahead = (on_accelerator if settings.prepare_ahead is None
                              else settings.prepare_ahead)
        self.inputs = InputBuilder(path, self.device, self.dtype,
                                   images_on_device=(on_accelerator
                                                     if settings.preprocess_on_device is None
                                                     else settings.preprocess_on_device))
        self.recipes = RecipeInputs(self.inputs, config)  # reference-interface requests
        # Bounds one forward's rows x tokens: the option rows each hold a copy of
        # their question's prefix cache, which is what fills device memory.
        self.max_batch_tokens = settings.max_batch_tokens
        supported = self.model_type in ONE_D_ROPE | MULTI_AXIS_ROPE
        wanted = settings.prefix_sharing is not False
        self.prefix_sharing = wanted and supported
        if wanted and not supported:
            self.sharing_note = f"off: not implemented for {self.model_type}; per-option forwards"
        elif not wanted:
            self.sharing_note = "off: disabled by setting"
        else:
            self.sharing_note = "on"
        attn = getattr(self.model.config, "_attn_implementation", None)
        if settings.packing is None:
            want_packed = (self.model_type in PACKED_BY_DEFAULT
                           and not self.device.startswith("cpu"))
        else:
            want_packed = settings.packing
        self.packed = self.prefix_sharing and want_packed and attn in MASKABLE_ATTENTION
        if not self.prefix_sharing:
            self.scoring_note = "per option"
        elif self.packed:
            self.scoring_note = "packed"
        elif want_packed:
            self.scoring_note = f"cache copy (packing needs sdpa or eager attention, not {attn})"
        else:
            self.scoring_note = "cache copy"
        text_config = config.get_text_config()
        self.context_tokens = (settings.max_context_tokens
                               or getattr(text_config, "max_position_embeddings", 0) or 0)
        self.max_option_tokens = settings.max_option_tokens
        if self.model_type in ONE_D_ROPE | MULTI_AXIS_ROPE:  # positions decode_loop knows
            positions = (mrope_positions(self.model) if self.model_type in MULTI_AXIS_ROPE
                         else one_d_positions)
            self.decoder = Decoder(self.model, self.inputs.pad_id,
                                   eos_ids(self.model, self.inputs.tokenizer), positions)
            self.generation_note = "batched (rows stop on their own)"
        else:
            self.decoder = None
            self.generation_note = f"one at a time (batching not implemented for {self.model_type})"
        self.arch = arch or model_cls.__name__
        # Scoring settings that change scores by design: the dtype.
        self._fingerprint = fingerprint_model_dir(path, extra=str(self.dtype))

    # ---------------------------------------------------------------- info
    def info(self) -> BackendInfo:
        return BackendInfo(
            name=self.path.name, backend="hf", fingerprint=self._fingerprint.digest,
            can_score=True, can_generate=True, can_generate_image=False,
            max_images=self.max_images, score_features=self.recipes.features(),
            context_tokens=self.context_tokens, max_option_tokens=self.max_option_tokens,
            details={"architecture": self.arch, "model_type": self.model_type,
                     "fingerprint": self._fingerprint.note(),
                     "device": self.device, "dtype": str(self.dtype).removeprefix("torch."),
                     "prefix_sharing": self.sharing_note,
                     "raw_prompt_image": repr(self.inputs.image_marker),
                     "option_scoring": self.scoring_note,
                     "generation": self.generation_note,
                     "max_batch_tokens": str(self.max_batch_tokens),
                     "context_tokens": str(self.context_tokens),
                     "max_option_tokens": str(self.max_option_tokens),
                     "attention": str(getattr(self.model.config, "_attn_implementation", "")),
                     "prepare": "worker threads" if self.prepare_ahead else "device thread",
                     "image_preprocessing": self.inputs.image_note,
                     "transformers": transformers.__version__, "torch": torch.__version__},
        )

    @property
    def stage_times(self) -> StageTimes | None:
        """Per-stage timing (benchmarks set it to see where time goes; None: off)."""
        return self.inputs.stage_times

    @stage_times.setter
    def stage_times(self, times: StageTimes | None) -> None:
        self.inputs.stage_times = times

    # ----------------------------------------------------------- admission
    def admit(self, task: ScoreTask | GenerateTask | GenerateImageTask) -> None:
        """Prompt tokens with images expanded, plus the answer (longest option, or
        max_new_tokens), against the context; options x longest option against the budget.

        Text is tokenised exactly (a fast tokenizer: ~1 ms for 100 KB); what an
        image adds is measured once per image size and remembered.
        """
        check_text_size(task.text, self.inputs.max_token_chars, self.context_tokens)
        if isinstance(task, ScoreTask):
            options = [len(self.inputs.plain_tokens(o)) for o in task.options]
            answer = check_option_budget(options, self.max_option_tokens)
            what = "the longest option"
        else:
            answer, what = task.max_new_tokens, "max_new_tokens"
        check_context(self.inputs.prompt_tokens(task), answer, what, self.context_tokens)

    # ------------------------------------------------------------- scoring
    def prepare(self, task: ScoreTask) -> ScoreTask | Planned:
        """Render, tokenise and preprocess images off the device thread (prefix-shared path).

        Only for accelerators: there the CPU work overlaps the device's; on a CPU
        device it would only take cores from the model's own threads.
        """
        if not self.prefix_sharing or not self.prepare_ahead:
            return task
        return self._plan(task, ahead=True)

    def _plan(self, task: ScoreTask, ahead: bool = False) -> Planned:
        if not self.prefix_sharing:
            return Planned(task, None)
        try:
            source = self.recipes if task.follows_recipe else self.inputs
            return Planned(task, source.shared(task, ahead))
        except CannotShare as exc:
            log.warning("[%s] prefix sharing not applicable (%s); per-option", task.request_id, exc)
            return Planned(task, None)

    def score(self, tasks: Sequence[ScoreTask | Planned]) -> list[ScoreResult]:
        """A question whose preparation or per-option forward fails, fails alone; the shared
        forward over a group of questions fails that group (a device error)."""
        planned = each_or_error(tasks, lambda t: t if isinstance(t, Planned) else self._plan(t))
        results: list[ScoreResult | None] = [None] * len(tasks)
        ready = []
        for i, p in enumerate(planned):
            if isinstance(p, Exception):
                results[i] = p
            elif p.shared is None:
                results[i] = each_or_error([p.task], self.score_per_option)[0]
            else:
                p.shared.wait_until_ready()  # prepared ahead on its own stream: ordered here
                ready.append((i, p.shared))
        mrope = self.model_type in MULTI_AXIS_ROPE
        if self.packed:
            groups = padded_groups(
                ready, lambda ip: row_length(ip[1].prefix["input_ids"].shape[1], ip[1].conts),
                self.max_batch_tokens)
            score_group = score_packed
        else:  # prefixes are left-padded to the group's longest
            groups = padded_groups(ready, lambda ip: ip[1].prefix["input_ids"].shape[1],
                                   self.max_batch_tokens)
            score_group = score_cache_copy
        for group in groups:
            for (i, _), scores in zip(group, score_group(self, [p for _, p in group], mrope),
                                      strict=True):
                results[i] = scores
        return results

    def score_per_option(self, task: ScoreTask) -> list[OptionScore]:
        """The reference method (hf_reference): one full forward pass per option."""
        return score_per_option(self, task)

    # ---------------------------------------------------------- generation
    def prepare_generate(self, task: GenerateTask) -> GenerateTask | PlannedPrompt:
        """Template, tokens and images ahead of the device, on accelerators (as `prepare`)."""
        if self.decoder is None or not self.prepare_ahead:
            return task
        return plan(self, task, ahead=True)

    def generate_batch(self, tasks: Sequence[GenerateTask | PlannedPrompt]) -> list[GenerateResult]:
        """hf_generate: batched, every row exactly as if generated alone."""
        return generate_batch(self, tasks)

    def generate(self, task: GenerateTask) -> str:
        (result,) = generate_batch(self, [task])
        if isinstance(result, Exception):
            raise result
        return result


environment.apply()  # serving/environment.py: before any tokenizer runs (TOKENIZERS_PARALLELISM)
