"""Text generation for the hf backend: the model's own `generate`, one prompt at a time."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from model_server.backends.base import GenerateTask
from model_server.backends.chat_prompt import messages
from model_server.backends.deadline_stop import TextDeadline, check_not_passed

if TYPE_CHECKING:
    from model_server.backends.hf import HFBackend


@torch.inference_mode()
def generate_one(b: HFBackend, task: GenerateTask) -> str:
    check_not_passed(task.deadline)
    prompt = b.inputs.template(messages(task.text, len(task.images)), add_generation_prompt=True)
    enc = b.inputs.encode(prompt, task.images)
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
