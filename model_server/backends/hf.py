"""Transformers vision-language backend: answer ranking ("PPL") and generation.

For each option: the summed log-probability of the option's tokens given the
images and the question, rendered with the model's own chat template (user turn
= images + question, assistant turn = the option), or, for a raw prompt, the
text as sent with the option appended (chat_prompt.render_raw).

Three ways to compute it, with equal results:
- per-option: one full forward pass per option (the reference method);
- packed (default where the architecture allows, see hf_packed): one forward per
  batch over rows `prefix + option_1 + ... + option_k`, a 4-D mask keeping the
  options apart;
- cache copy: the images and question are encoded once per question, then all
  options of all questions in the batch are scored in one forward over their
  continuations from copies of the shared key/value cache.
"""

from __future__ import annotations

import copy
import logging
import os
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
    GenerateTask,
    OptionScore,
    ScoreResult,
    ScoreTask,
    score_each,
)
from model_server.backends.chat_prompt import messages
from model_server.backends.deadline_stop import TextDeadline, check_not_passed
from model_server.backends.hf_inputs import CannotShare, InputBuilder, SharedInputs
from model_server.backends.hf_packed import (
    MASKABLE_ATTENTION,
    option_logprobs,
    pack,
    row_length,
)
from model_server.backends.host_to_device import to_device
from model_server.backends.local_settings import HFSettings
from model_server.backends.reference_prompt import RecipeInputs
from model_server.backends.torch_device import pick_device, pick_dtype
from model_server.fingerprint import fingerprint_model_dir
from model_server.stage_times import StageTimes, stage
from model_server.tiny import build_random, random_init_seed

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


def _padded_groups(items: list, length, budget: int, max_padding: float = 0.25) -> list[list]:
    """Groups of items sorted by length: rows x longest row stays within budget, and at
    most `max_padding` of a group's rows x longest row is padding.

    Rows are padded to the group's longest, and padding costs as much as real tokens,
    so one-image questions (~600 tokens) never share a forward with eight-frame ones
    (~4,700): sorted, they go in separate groups.
    """
    groups, cur, used = [], [], 0
    for item in sorted(items, key=length):
        n = length(item)  # the longest so far: sorted ascending
        padded = (len(cur) + 1) * n
        if cur and (padded > budget or padded > (1 + max_padding) * (used + n)):
            groups.append(cur)
            cur, used = [], 0
        cur.append(item)
        used += n
    if cur:
        groups.append(cur)
    return groups


def _budget_groups(items: list, cost, budget: int) -> list[list]:
    """Consecutive groups whose summed cost stays within budget (at least one item each)."""
    groups, cur, used = [], [], 0
    for item in items:
        c = cost(item)
        if cur and used + c > budget:
            groups.append(cur)
            cur, used = [], 0
        cur.append(item)
        used += c
    if cur:
        groups.append(cur)
    return groups


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

    # ------------------------------------------------------------- helpers
    @staticmethod
    def _sum_logprobs(logits: torch.Tensor, ids: torch.Tensor, begin: int, end: int) -> float:
        logp = torch.log_softmax(logits[begin - 1:end - 1].float(), dim=-1)
        return float(logp.gather(-1, ids[begin:end, None]).sum())

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
        planned = score_each(tasks, lambda t: t if isinstance(t, Planned) else self._plan(t))
        results: list[ScoreResult | None] = [None] * len(tasks)
        ready = []
        for i, p in enumerate(planned):
            if isinstance(p, Exception):
                results[i] = p
            elif p.shared is None:
                results[i] = score_each([p.task], self.score_per_option)[0]
            else:
                p.shared.wait_until_ready()  # prepared ahead on its own stream: ordered here
                ready.append((i, p.shared))
        if self.packed:
            groups = _padded_groups(
                ready, lambda ip: row_length(ip[1].prefix["input_ids"].shape[1], ip[1].conts),
                self.max_batch_tokens)
            score_group = self._score_packed
        else:  # prefixes are left-padded to the group's longest
            groups = _padded_groups(ready, lambda ip: ip[1].prefix["input_ids"].shape[1],
                                    self.max_batch_tokens)
            score_group = self._score_shared
        for group in groups:
            for (i, _), scores in zip(group, score_group([p for _, p in group]), strict=True):
                results[i] = scores
        return results

    @torch.inference_mode()
    def score_per_option(self, task: ScoreTask) -> list[OptionScore]:
        """The reference method: one full forward pass per option."""
        source = self.recipes if task.follows_recipe else self.inputs
        out = []
        for enc, begin, end in source.option_inputs(task):
            with stage(self.stage_times, "forward (reference: whole prompt per option)"):
                logits = self.model(**enc).logits[0]
            with stage(self.stage_times, "output head, log-softmax, gather"):
                total = self._sum_logprobs(logits, enc["input_ids"][0], begin, end)
            out.append(OptionScore(total, end - begin))
        return out

    @torch.inference_mode()
    def _score_packed(self, batch: list[SharedInputs]) -> list[list[OptionScore]]:
        """One forward over packed rows `prefix + option_1 + ... + option_k` (hf_packed)."""
        mrope = self.model_type in MULTI_AXIS_ROPE
        with stage(self.stage_times, "pack rows, mask, positions"):
            packed = pack(batch, self.inputs.pad_id, self.device, self.dtype,
                          (lambda i: self._mrope_prefix(batch[i])) if mrope else None)
        with stage(self.stage_times, "forward (packed: prefix + options)"):
            hidden = self.model.model(**packed.inputs, use_cache=False).last_hidden_state
        with stage(self.stage_times, "output head, log-softmax, gather"):
            sums = option_logprobs(hidden, self.model.get_output_embeddings(), packed)
        return [[OptionScore(total, e - b) for total, (b, e) in zip(s, p.spans, strict=True)]
                for s, p in zip(sums, batch, strict=True)]

    def _mrope_prefix(self, p: SharedInputs) -> tuple[torch.Tensor, int]:
        """A prefix's multi-axis positions (3, P) and the text position that follows it."""
        n = p.prefix["input_ids"].shape[1]
        grids = {k: p.prefix[k] for k in ("image_grid_thw", "video_grid_thw") if k in p.prefix}
        if not grids:
            return torch.arange(n, device=self.device).expand(3, n), n
        pos, delta = self.model.model.get_rope_index(
            p.prefix["input_ids"], mm_token_type_ids=p.prefix["mm_token_type_ids"], **grids)
        return pos[:, 0], n + int(delta.view(-1)[0])

    @torch.inference_mode()
    def _score_shared(self, batch: list[SharedInputs]) -> list[list[OptionScore]]:
        dev = self.device
        lengths = [p.prefix["input_ids"].shape[1] for p in batch]
        pmax = max(lengths)
        per_token = [k for k, v in batch[0].prefix.items()
                     if v.dim() >= 2 and v.shape[1] == lengths[0] and v.dtype in (torch.long, torch.int)]
        inputs: dict[str, torch.Tensor] = {}
        for k in per_token:  # left-pad so every prefix ends at the same column
            fill = self.inputs.pad_id if k == "input_ids" else 0
            inputs[k] = torch.cat([
                torch.nn.functional.pad(p.prefix[k], (pmax - n, 0), value=fill)
                for p, n in zip(batch, lengths, strict=True)])
        mask = torch.zeros(len(batch), pmax, dtype=torch.long)
        for i, n in enumerate(lengths):
            mask[i, pmax - n:] = 1
        mask = to_device(mask, dev)
        inputs["attention_mask"] = mask
        for k in dict.fromkeys(k for p in batch for k in p.prefix):  # a first question
            if k not in inputs:                                     # may have no images
                parts = [p.prefix[k] for p in batch if k in p.prefix]
                inputs[k] = torch.cat(parts) if len(parts) > 1 else parts[0]
        # Positions: 1-D models get them explicitly (left padding must not shift them);
        # multi-axis (M-RoPE) models derive them from the image grid and report the
        # offset of the next text position as rope_deltas. Without images both are 1-D.
        mrope = self.model_type in MULTI_AXIS_ROPE and "image_grid_thw" in inputs
        inner = getattr(self.model, "model", self.model)
        if mrope:
            inner.rope_deltas = None
        else:
            inputs["position_ids"] = (mask.cumsum(-1) - 1).clamp(min=0)
        with stage(self.stage_times, "prefix forward"):
            out = self.model(**inputs, use_cache=True, logits_to_keep=1)
        last_logp = torch.log_softmax(out.logits[:, -1].float(), dim=-1)
        next_pos = torch.tensor(lengths, device=dev)
        if mrope:
            next_pos = next_pos + inner.rope_deltas.view(-1).to(dev)

        rows = [(i, j) for i, p in enumerate(batch) for j in range(len(p.conts))]
        width = max(1, max(len(batch[i].conts[j]) for i, j in rows))
        results: list[list[OptionScore]] = [[] for _ in batch]
        for chunk in _budget_groups(rows, lambda _: pmax + width, self.max_batch_tokens):
            self._score_rows(batch, chunk, out.cache, mask, next_pos, last_logp, width, mrope,
                             results)
        return results

    def _score_rows(self, batch, rows, prefix_cache, mask, next_pos, last_logp, width, mrope,
                    results) -> None:
        """One forward over the continuations of `rows` (question, option) from their prefixes."""
        dev = self.device
        owner = torch.tensor([i for i, _ in rows], device=dev)
        cache = copy.copy(prefix_cache)  # the selection below rebinds tensors, never edits them
        cache.layers = [copy.copy(layer) for layer in prefix_cache.layers]
        cache.batch_select_indices(owner)
        cont = torch.full((len(rows), width), self.inputs.pad_id, dtype=torch.long)
        cmask = torch.zeros(len(rows), width, dtype=torch.long)
        for r, (i, j) in enumerate(rows):  # built on the host, copied once
            toks = batch[i].conts[j]
            cont[r, :len(toks)] = torch.tensor(toks, dtype=torch.long)
            cmask[r, :len(toks)] = 1
        cont, cmask = to_device(cont, dev), to_device(cmask, dev)
        pos = next_pos[owner, None] + torch.arange(width, device=dev)[None, :]
        if mrope:
            pos = pos[None].expand(3, -1, -1)
        with stage(self.stage_times, "option forward (from cache copies)"):
            logits = self.model(input_ids=cont, attention_mask=torch.cat([mask[owner], cmask], dim=1),
                                position_ids=pos, cache=cache, use_cache=True).logits
        with stage(self.stage_times, "output head, log-softmax, gather"):
            self._gather_rows(batch, rows, cont, logits, last_logp, results)

    def _gather_rows(self, batch, rows, cont, logits, last_logp, results) -> None:
        for r, (i, j) in enumerate(rows):
            b, e = batch[i].spans[j]
            total = 0.0
            if b == 0:  # the first answer token is predicted by the prefix's last position
                total += float(last_logp[i, cont[r, 0]])
                b = 1
            if e > b:
                total += self._sum_logprobs(logits[r], cont[r], b, e)
            results[i].append(OptionScore(total, batch[i].spans[j][1] - batch[i].spans[j][0]))

    # ---------------------------------------------------------- generation
    @torch.inference_mode()
    def generate(self, task: GenerateTask) -> str:
        check_not_passed(task.deadline)
        prompt = self.inputs.template(messages(task.text, len(task.images)),
                                      add_generation_prompt=True)
        enc = self.inputs.encode(prompt, task.images)
        torch.manual_seed(task.seed)
        kw = {"do_sample": task.temperature > 0, "max_new_tokens": task.max_new_tokens,
              "pad_token_id": self.inputs.pad_id}
        deadline = TextDeadline(task.deadline)  # nobody waits for the answer after it
        if task.temperature > 0:
            kw["temperature"] = task.temperature
        out = self.model.generate(**enc, **kw, **deadline.kwargs())
        deadline.check()
        new = out[0, enc["input_ids"].shape[1]:]
        return self.inputs.decode(new)


os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
