"""Moving a question's inputs onto the model's device without stalling the host thread.

On CUDA a CPU tensor is first placed in pinned (page-locked) host memory and then
copied with `non_blocking=True`: the copy runs by DMA while the calling thread goes
on, queued on the device's stream ahead of the forward that reads it (stream order
makes that safe, and torch's pinned-memory allocator keeps the host buffer until
the copy has run). Images travel as uint8 pixels, a quarter of float32's bytes,
and are resized and normalised on the device by the processor (the torchvision
image processors take a `device`). The prepare threads do their device work (these copies,
the resizing) on a CUDA stream of their own: on the device's default stream it
would queue behind the forward running there, and a processor that reads a size
back to the host would wait for that forward. The consumer's stream waits on an
event before the first use. On a CPU device every function here returns its
input unchanged: no copy, no pinning, no stream.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import torch
from PIL import Image


def pins_memory(device: str) -> bool:
    """Copies to `device` go through pinned host memory (CUDA only: pinning needs its driver)."""
    return torch.device(device).type == "cuda"


def to_device(tensor: torch.Tensor, device: str, dtype: torch.dtype | None = None) -> torch.Tensor:
    """`tensor` on `device` (floating tensors cast to `dtype` there, after the copy).

    A CPU tensor bound for CUDA is pinned and copied without blocking the caller.
    """
    if tensor.device != torch.device(device):
        if pins_memory(device) and tensor.device.type == "cpu":
            tensor = tensor.pin_memory().to(device, non_blocking=True)
        else:
            tensor = tensor.to(device)
    if dtype is not None and tensor.is_floating_point() and tensor.dtype != dtype:
        tensor = tensor.to(dtype)
    return tensor


def image_tensors(images: Sequence[Image.Image], device: str) -> list[torch.Tensor]:
    """RGB images as uint8 (3, H, W) tensors on `device`, the form the torchvision image
    processors convert a PIL image to themselves, so their output is the same."""
    out = []
    for image in images:
        rgb = image if image.mode == "RGB" else image.convert("RGB")  # decoded images are RGB
        hwc = np.asarray(rgb, dtype=np.uint8)
        chw = np.ascontiguousarray(hwc.transpose(2, 0, 1))  # one copy, writable
        out.append(to_device(torch.from_numpy(chw), device))
    return out


def processor_takes_device(processor) -> bool:
    """Whether the processor's image processor resizes and normalises tensors on a given
    device (transformers' torchvision backend); the PIL/numpy ones work on the CPU only."""
    image_processor = getattr(processor, "image_processor", None)
    try:
        from transformers.image_processing_backends import TorchvisionBackend
    except ImportError:  # an older transformers: no device-capable image processors
        return False
    return isinstance(image_processor, TorchvisionBackend)


class PrepareStream:
    """The prepare threads' own CUDA stream (None on other devices): their copies and
    image kernels run beside the forward on the default stream, not behind it."""

    def __init__(self, device: str):
        dev = torch.device(device)
        self.stream = torch.cuda.Stream(dev) if dev.type == "cuda" else None

    @contextmanager
    def running(self) -> Iterator[None]:
        """Device work queued inside the block goes to this stream."""
        if self.stream is None:
            yield
            return
        with torch.cuda.stream(self.stream):
            yield

    def ready(self):
        """An event marking everything queued on the stream so far (None without a stream)."""
        if self.stream is None:
            return None
        event = torch.cuda.Event()
        event.record(self.stream)
        return event


def wait_ready(event, tensors: Iterable[torch.Tensor]) -> None:
    """Before the first use on the calling thread's stream: that stream waits for `event`
    (the prepare stream's work), and each CUDA tensor is marked as used there, so the
    allocator keeps its memory until that use is done even once the tensor is freed."""
    if event is None:
        return
    cuda = [t for t in tensors if t.is_cuda]
    if not cuda:
        return
    current = torch.cuda.current_stream(cuda[0].device)
    current.wait_event(event)
    for t in cuda:
        t.record_stream(current)
