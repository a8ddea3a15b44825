"""Images preprocessed on the model's device, and host-to-device copies.

On the CPU the device path is the same code as on an accelerator (uint8 pixel
tensors handed to the processor with a device), minus the pinned copies, so
its scores must equal the CPU path's exactly.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
import torch
from PIL import Image
from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

from model_server import backends
from model_server.backends.host_to_device import (
    PrepareStream,
    image_tensors,
    pins_memory,
    processor_takes_device,
    to_device,
    wait_ready,
)
from tests.test_prefix_sharing import MIXED
from tests.tiny_models import tiny_model


class _SpyProcessor:
    """Delegates to the real processor and records what each call's images were."""

    def __init__(self, real):
        self._real = real
        self.calls: list[dict] = []

    def __getattr__(self, name):
        return getattr(self._real, name)

    def __call__(self, **kw):
        images = kw.get("images") or []
        self.calls.append({"types": {type(im).__name__ for im in images},
                           "dtypes": {str(im.dtype) for im in images if isinstance(im, torch.Tensor)},
                           "device": kw.get("device")})
        return self._real(**kw)


@pytest.fixture(scope="module", params=["llava", "qwen2_vl"])
def model_path(request, tmp_path_factory):
    return str(tiny_model(request.param, tmp_path_factory.getbasetemp()))


@pytest.mark.parametrize("packing", ["true", "false"])
def test_device_preprocessing_scores_equal_the_cpu_path(model_path, packing):
    on = backends.create("hf", model_path, preprocess_on_device="true", packing=packing)
    off = backends.create("hf", model_path, preprocess_on_device="false", packing=packing)
    assert on.inputs.images_on_device and not off.inputs.images_on_device
    assert on.info().details["image_preprocessing"].startswith("on cpu")
    assert off.info().details["image_preprocessing"] == "cpu"
    spy = on.inputs.processor = _SpyProcessor(on.inputs.processor)
    on.prepare_ahead = True  # prepared in worker threads, as on an accelerator
    with ThreadPoolExecutor(4) as pool:
        prepared = list(pool.map(on.prepare, MIXED * 2))
    got, want = on.score(prepared), off.score(MIXED * 2)
    for g, w in zip(got, want, strict=True):
        assert [(s.logprob_sum, s.num_tokens) for s in g] == \
            [(s.logprob_sum, s.num_tokens) for s in w]
    with_images = [c for c in spy.calls if c["types"]]
    assert len(with_images) == 2 * sum(1 for t in MIXED if t.images)
    assert all(c["types"] == {"Tensor"} and c["dtypes"] == {"torch.uint8"} and c["device"] == "cpu"
               for c in with_images)


def test_image_tensors_are_what_the_processor_makes_of_the_pil_image():
    image = Image.new("RGB", (5, 3))
    image.putpixel((4, 2), (10, 20, 30))
    [t] = image_tensors([image], "cpu")
    assert t.dtype == torch.uint8 and t.shape == (3, 3, 5) and t.is_contiguous()
    assert t[:, 2, 4].tolist() == [10, 20, 30]
    [grey] = image_tensors([Image.new("L", (2, 2), 7)], "cpu")  # converted to RGB first
    assert grey.shape == (3, 2, 2) and grey.unique().tolist() == [7]


def test_to_device_on_the_same_device_neither_copies_nor_pins():
    ids = torch.arange(4)
    assert to_device(ids, "cpu") is ids
    pixels = torch.ones(2, 2)
    assert to_device(pixels, "cpu", torch.bfloat16).dtype == torch.bfloat16
    assert to_device(ids, "cpu", torch.bfloat16).dtype == torch.long  # integers keep their type
    assert pins_memory("cuda") and pins_memory("cuda:1")
    assert not pins_memory("cpu") and not pins_memory("mps")


def test_an_image_processor_without_a_device_keeps_preprocessing_on_the_cpu(model_path,
                                                                           monkeypatch):
    b = backends.create("hf", model_path, preprocess_on_device="true")
    assert processor_takes_device(b.inputs.processor)
    b.inputs.processor.image_processor = CLIPImageProcessorPil()  # transformers' PIL backend
    assert not processor_takes_device(b.inputs.processor)
    assert not processor_takes_device(object())
    import model_server.backends.hf_inputs as hf_inputs

    monkeypatch.setattr(hf_inputs, "processor_takes_device", lambda processor: False)
    pil = backends.create("hf", model_path, preprocess_on_device="true")
    assert not pil.inputs.images_on_device
    assert pil.info().details["image_preprocessing"] == "cpu (the image processor takes no device)"
    assert all(isinstance(r, list) for r in pil.score(MIXED[:2]))  # still scores, on the CPU


def test_auto_keeps_images_on_the_cpu_when_the_model_is_on_the_cpu(model_path):
    b = backends.create("hf", model_path)
    assert not b.inputs.images_on_device and b.info().details["image_preprocessing"] == "cpu"


def test_the_prepare_stream_exists_on_cuda_only_and_is_a_no_op_elsewhere(model_path):
    stream = PrepareStream("cpu")
    assert stream.stream is None and stream.ready() is None
    with stream.running():
        moved = to_device(torch.ones(2), "cpu")
    wait_ready(None, [moved])  # nothing to wait for
    b = backends.create("hf", model_path, preprocess_on_device="true")
    b.prepare_ahead = True
    planned = b.prepare(MIXED[0])
    assert planned.shared is not None and planned.shared.ready is None  # no event on a CPU
