"""Batched text generation with a key/value cache, each row stopping on its own.

transformers' `generate` samples a whole batch from one random stream (a row's
sample would depend on its batch-mates), cannot stop one row at its own deadline
and refuse it while the others go on, and stops a batch only when its last row
is done. This loop gives every row what it would get alone:

- its own stop: end-of-sequence, its own max_new_tokens, its own deadline (a row
  cut there is refused with DeadlinePassed, never returned as a whole answer);
  a finished row leaves the batch (its cache rows are dropped), the others go on;
- greedy (argmax), or seeded sampling as transformers' `generate` samples
  (Sampling: temperature, then top-k and top-p) from a random generator of its
  own, seeded from its request (on the CPU the stream `torch.manual_seed` gives);
- its own positions under left padding (1-D from the mask, or the model's own
  multi-axis M-RoPE positions with each row's offset of the next text position).

Rows are grouped by prompt length within the token budget (batch_groups), each
group prefilled in one forward and decoded one token per forward.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import transformers

from model_server.backends import deadline_stop
from model_server.backends.batch_groups import padded_groups
from model_server.backends.left_padding import left_padded
from model_server.stage_times import StageTimes, stage

# What a row's generation ends with: its new tokens, or the error that refused it.
RowResult = list[int] | Exception

PREFILL = "generation: prefill (prompt forward)"
DECODE = "generation: decode steps (one token per row per forward)"
# A group's prompts may be at most this share padding: a padded prompt costs one
# prefill, a second group costs a whole second decode loop.
MAX_PROMPT_PADDING = 1.0


@dataclass(frozen=True)
class Row:
    """One prompt of a batch and how to continue it."""

    inputs: dict[str, torch.Tensor]  # the processor's tensors (batch 1), on the device
    max_new_tokens: int
    temperature: float = 0.0  # 0: greedy
    seed: int = 0
    deadline: float | None = None  # deadline_stop.now() by which the client wants it


# (left-padded inputs, attention mask) -> (prefill position_ids, each row's next position)
Positions = Callable[[dict[str, torch.Tensor], torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def one_d_positions(inputs: dict[str, torch.Tensor], mask: torch.Tensor
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Positions counted over each row's real tokens: left padding shifts nothing."""
    return (mask.cumsum(-1) - 1).clamp(min=0), mask.sum(-1)


def mrope_positions(model) -> Positions:
    """Multi-axis (M-RoPE, Qwen2-VL) positions from the model's own rope index, per row
    over its real tokens; 1-D when the batch holds no image."""
    def positions(inputs, mask):
        if "image_grid_thw" not in inputs:
            return one_d_positions(inputs, mask)
        pos, delta = model.model.get_rope_index(
            inputs["input_ids"], mm_token_type_ids=inputs["mm_token_type_ids"],
            image_grid_thw=inputs["image_grid_thw"], attention_mask=mask)
        return pos, mask.sum(-1) + delta.view(-1).to(mask.device)
    return positions


class Sampling:
    """transformers' sampling for a model: logits / temperature, then its generation
    config's top-k and top-p (transformers' defaults, 50 and 1.0, where it sets none),
    then one draw from the softmax, so a seeded row samples as `generate` would."""

    TOP_K = 50  # transformers' default when the model's generation config sets none

    def __init__(self, generation_config):
        top_k = self.TOP_K if generation_config.top_k is None else generation_config.top_k
        top_p = generation_config.top_p
        self.warpers = [transformers.TopKLogitsWarper(top_k)] if top_k > 0 else []
        if top_p is not None and top_p < 1.0:
            self.warpers.append(transformers.TopPLogitsWarper(top_p))

    def draw(self, scores: torch.Tensor, temperature: float, generator: torch.Generator
             ) -> torch.Tensor:
        """One token from a row's scores (vocabulary,)."""
        scores = scores[None] / temperature
        for warp in self.warpers:
            scores = warp(None, scores)
        return torch.multinomial(torch.softmax(scores, dim=-1)[0], 1, generator=generator)[0]


def eos_ids(model, tokenizer) -> list[int]:
    """The tokens that end a reply: the model's generation config's, else the tokenizer's."""
    eos = model.generation_config.eos_token_id
    if eos is None:
        eos = tokenizer.eos_token_id
    return [] if eos is None else [eos] if isinstance(eos, int) else list(eos)


@dataclass
class DecodeCounts:
    """What the decoder has done (benchmarks: new tokens/s, memory read per decode step)."""

    prefill_tokens: int = 0     # rows x longest prompt, summed over prefills (padding included)
    new_tokens: int = 0         # tokens generated, over all rows
    steps: int = 0              # decode forwards (one token for every active row each)
    cache_tokens_read: int = 0  # rows x cache length, summed over decode forwards


class Decoder:
    """Generates for batches of rows with one model (a transformers causal LM taking
    input_ids, attention_mask, position_ids and cache)."""

    def __init__(self, model, pad_id: int, eos_ids: Sequence[int], positions: Positions):
        self.model = model
        self.pad_id = pad_id
        self.eos = set(eos_ids)
        self.positions = positions
        self.sampling = Sampling(model.generation_config)
        self.counts = DecodeCounts()

    def texts(self, rows: Sequence[Row | Exception], max_batch_tokens: int,
              decode: Callable[[list[int]], str], times: StageTimes | None = None
              ) -> list[str | Exception]:
        """Each row's text (`decode` of its new tokens) or its error; an exception in `rows`
        stands for a row that could not be made (its preparation failed) and is its result."""
        made = [r for r in rows if isinstance(r, Row)]
        done = iter(self.run(made, max_batch_tokens, times))
        out: list[str | Exception] = []
        for r in rows:
            res = next(done) if isinstance(r, Row) else r
            out.append(res if isinstance(res, Exception) else decode(res))
        return out

    @torch.inference_mode()
    def run(self, rows: Sequence[Row], max_batch_tokens: int,
            times: StageTimes | None = None) -> list[RowResult]:
        """New tokens per row (end-of-sequence included when written), or its error.

        Rows are grouped so rows x (longest prompt + max_new_tokens) stays within
        `max_batch_tokens`; groups run one after another, and a row whose deadline
        passes while an earlier group runs is refused before it begins.
        """
        results: list[RowResult | None] = [None] * len(rows)
        groups = padded_groups(list(range(len(rows))), lambda i: _cost(rows[i]),
                               max_batch_tokens, MAX_PROMPT_PADDING)
        for group in groups:
            for i, gone in zip(group, deadline_stop.passed([rows[i].deadline for i in group]),
                               strict=True):
                if gone:
                    results[i] = deadline_stop.not_begun()
            live = [i for i in group if results[i] is None]
            if live:
                for i, r in zip(live, self._run_group([rows[i] for i in live], times),
                                strict=True):
                    results[i] = r
        return results

    def _run_group(self, rows: list[Row], times: StageTimes | None) -> list[RowResult]:
        dev = rows[0].inputs["input_ids"].device
        with stage(times, PREFILL):
            inputs, mask = left_padded([r.inputs for r in rows], self.pad_id, str(dev))
            prefill_pos, next_pos = self.positions(inputs, mask)
            out = self.model(**inputs, position_ids=prefill_pos, use_cache=True, logits_to_keep=1)
        self.counts.prefill_tokens += mask.numel()
        cache, logits = out.cache, out.logits[:, -1]
        gens = [_generator(r, dev) for r in rows]
        tokens: list[list[int]] = [[] for _ in rows]
        results: list[RowResult | None] = [None] * len(rows)
        active = list(range(len(rows)))  # rows still generating, in batch order
        with stage(times, DECODE):
            while True:
                chosen = self._pick(logits, [rows[i] for i in active], [gens[i] for i in active])
                for i, t in zip(active, chosen.tolist(), strict=True):
                    tokens[i].append(t)
                self.counts.new_tokens += len(active)
                keep = self._going_on(rows, active, tokens, results)
                if not keep:
                    return results
                if len(keep) < len(active):  # finished rows leave the batch and its cache
                    idx = torch.tensor(keep, device=dev)
                    cache.batch_select_indices(idx)
                    chosen, mask, next_pos = chosen[idx], mask[idx], next_pos[idx]
                    active = [active[k] for k in keep]
                mask = torch.cat([mask, mask.new_ones(len(active), 1)], dim=1)
                step = len(tokens[active[0]]) - 1  # tokens already fed after the prompt
                out = self.model(input_ids=chosen[:, None], attention_mask=mask,
                                 position_ids=(next_pos + step)[:, None], cache=cache,
                                 use_cache=True, logits_to_keep=1)
                cache, logits = out.cache, out.logits[:, -1]
                self.counts.steps += 1
                self.counts.cache_tokens_read += mask.numel()

    def _pick(self, logits: torch.Tensor, rows: list[Row], gens: list[torch.Generator | None]
              ) -> torch.Tensor:
        """Each row's next token: argmax, or a draw from its own generator."""
        chosen = logits.argmax(-1)
        for k, (row, gen) in enumerate(zip(rows, gens, strict=True)):
            if gen is not None:
                chosen[k] = self.sampling.draw(logits[k].float(), row.temperature, gen)
        return chosen

    def _going_on(self, rows: list[Row], active: list[int], tokens: list[list[int]],
                  results: list[RowResult | None]) -> list[int]:
        """After a token per active row: settle the rows that stop (end-of-sequence, their
        max_new_tokens, their deadline: one look at the clock for all); the positions in
        `active` of those that go on."""
        gone = deadline_stop.passed([rows[i].deadline for i in active])
        keep = []
        for k, i in enumerate(active):
            if tokens[i][-1] in self.eos or len(tokens[i]) >= rows[i].max_new_tokens:
                results[i] = tokens[i]
            elif gone[k]:
                results[i] = deadline_stop.stopped_after(len(tokens[i]))
            else:
                keep.append(k)
        return keep


def _cost(row: Row) -> int:
    """Tokens a row holds in the cache at its end: prompt + new tokens."""
    return row.inputs["input_ids"].shape[1] + row.max_new_tokens


def _generator(row: Row, device: torch.device) -> torch.Generator | None:
    if row.temperature <= 0:
        return None
    return torch.Generator(device=device).manual_seed(row.seed)
