"""Text generation for the hf backend: a batch of prompts at once, each as if alone.

LLaVA and Qwen2-VL layouts (1-D and M-RoPE positions) decode in batches with
decode_loop (left padding, per-row positions, stops, deadlines and seeds);
other architectures fall back to transformers' `generate`, one prompt at a time.
Prompts are templated, tokenised and their images preprocessed by `plan`: in the
server's worker threads on accelerators (prepare_ahead), else on the device thread.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from model_server.backends.base import GenerateResult, GenerateTask, each_or_error
from model_server.backends.deadline_stop import TextDeadline, check_not_passed
from model_server.backends.decode_loop import Row
from model_server.backends.hf_inputs import PromptInputs

if TYPE_CHECKING:
    from model_server.backends.hf import HFBackend


@dataclass(frozen=True)
class PlannedPrompt:
    """A generation task with its prompt made ready (by prepare_generate, or on the device thread)."""

    task: GenerateTask
    inputs: PromptInputs


def plan(b: HFBackend, task: GenerateTask, ahead: bool = False) -> PlannedPrompt:
    return PlannedPrompt(task, b.inputs.generation(task, ahead))


def generate_batch(b: HFBackend, tasks: Sequence[GenerateTask | PlannedPrompt]
                   ) -> list[GenerateResult]:
    """Each task's text, or its error (its preparation, or its deadline) alone."""
    if b.decoder is None:
        return each_or_error(tasks, lambda t: generate_one(b, t))  # prepare_generate: no plan
    planned: list[PlannedPrompt | Exception] = [
        t if isinstance(t, PlannedPrompt) else None for t in tasks]
    todo = [i for i, p in enumerate(planned) if p is None]  # not prepared ahead: here, at once
    for i, inputs in zip(todo, b.inputs.generations([tasks[i] for i in todo]), strict=True):
        planned[i] = inputs if isinstance(inputs, Exception) else PlannedPrompt(tasks[i], inputs)
    rows = [p if isinstance(p, Exception) else _row(p) for p in planned]
    return b.decoder.texts(rows, b.max_batch_tokens, b.inputs.decode, b.stage_times)


def _row(p: PlannedPrompt) -> Row:
    p.inputs.wait_until_ready()  # prepared ahead on its own stream: ordered here
    t = p.task
    return Row(p.inputs.enc, t.max_new_tokens, t.temperature, t.seed, t.deadline)


@torch.inference_mode()
def generate_one(b: HFBackend, task: GenerateTask) -> str:
    """transformers' `generate` for one prompt (architectures decode_loop does not cover)."""
    check_not_passed(task.deadline)
    enc = b.inputs.generation(task).enc
    torch.manual_seed(task.seed)
    kw = {"do_sample": task.temperature > 0, "max_new_tokens": task.max_new_tokens,
          "pad_token_id": b.inputs.pad_id}
    deadline = TextDeadline(task.deadline)  # nobody waits for the answer after it
    if task.temperature > 0:
        kw["temperature"] = task.temperature
    out = b.model.generate(**enc, **kw, **deadline.kwargs())
    deadline.check()
    new = out[0, enc["input_ids"].shape[1]:]
    return b.inputs.decode(new)
