"""Prefix-shared, batched scoring equals the per-option reference on mixed batches."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from model_server import backends
from model_server.backends.base import ScoreTask
from model_server.backends.hf import Planned
from tests.images import png
from tests.tiny_models import tiny_model


def _img(seed, size=(48, 40)):
    return Image.open(io.BytesIO(png(seed, size))).convert("RGB")


MIXED = [  # prompt lengths, image counts and option lengths all differ within one batch
    ScoreTask("a", "Colour?", [_img(1)], ["Red", "green", "a very long blue answer text", "x"]),
    ScoreTask("b", "A much longer question that goes on for a while before it asks: which?",
              [_img(2), _img(3, (64, 64)), _img(4, (30, 50))], ["first", "second", "third"]),
    ScoreTask("c", "Step <img> then <img>; what next?", [_img(5), _img(6)],
              ["1", "22", "the third thing happens", "D"], include_end_of_turn=True),
    ScoreTask("d", "No image at all: pick one.", [], ["yes", "no"]),
    ScoreTask("e", "Letters?\nA. x\nB. y\nC. z\nD. w", [_img(7)], list("ABCD")),
]


@pytest.fixture(scope="module", params=[("llava", "true"), ("llava", "false"),
                                        ("qwen2_vl", "true"), ("qwen2_vl", "false")],
                ids=lambda p: f"{p[0]}-{'packed' if p[1] == 'true' else 'cache-copy'}")
def backend(request, tmp_path_factory):
    arch, packing = request.param
    b = backends.create("hf", str(tiny_model(arch, tmp_path_factory.getbasetemp())),
                        packing=packing)
    assert b.packed == (packing == "true")
    return b


def test_mixed_batch_equals_per_option_reference(backend):
    assert backend.prefix_sharing
    batched = backend.score(MIXED)
    for task, got in zip(MIXED, batched, strict=True):
        want = backend.score_per_option(task)
        assert [g.num_tokens for g in got] == [w.num_tokens for w in want]
        for g, w in zip(got, want, strict=True):
            assert abs(g.logprob_sum - w.logprob_sum) < 1e-4, (task.request_id, g, w)
        assert max(range(len(got)), key=lambda k: got[k].logprob_sum / got[k].num_tokens) == \
            max(range(len(want)), key=lambda k: want[k].logprob_sum / want[k].num_tokens)


def test_batch_result_independent_of_batch_neighbours(backend):
    alone = [backend.score([t])[0] for t in MIXED]
    together = backend.score(list(reversed(MIXED)))[::-1]
    for a, b in zip(alone, together, strict=True):
        for x, y in zip(a, b, strict=True):
            assert abs(x.logprob_sum - y.logprob_sum) < 1e-4 and x.num_tokens == y.num_tokens


def test_batch_led_by_a_question_without_images(backend):
    """The image-free question first (and, packed, shortest): the others keep their images."""
    tasks = [MIXED[3], MIXED[0], MIXED[2]]
    for task, got in zip(tasks, backend.score(tasks), strict=True):
        for g, w in zip(got, backend.score_per_option(task), strict=True):
            assert abs(g.logprob_sum - w.logprob_sum) < 1e-4 and g.num_tokens == w.num_tokens


def test_token_budget_splits_batches_without_changing_results(backend):
    whole = backend.score(MIXED)
    saved = backend.max_batch_tokens
    backend.max_batch_tokens = 64  # forces one question per prefix forward, few rows per chunk
    try:
        split = backend.score(MIXED)
    finally:
        backend.max_batch_tokens = saved
    for a, b in zip(whole, split, strict=True):
        for x, y in zip(a, b, strict=True):
            assert abs(x.logprob_sum - y.logprob_sum) < 1e-4 and x.num_tokens == y.num_tokens


def test_tasks_prepared_concurrently_off_the_device_thread_score_the_same(backend):
    from concurrent.futures import ThreadPoolExecutor

    backend.prepare_ahead = True  # as on an accelerator (tests run on the CPU)
    try:
        with ThreadPoolExecutor(4) as pool:  # as the server does: several prepare threads
            prepared = list(pool.map(backend.prepare, MIXED * 3))
    finally:
        backend.prepare_ahead = False
    assert all(isinstance(t, Planned) and t.shared is not None for t in prepared)
    got = backend.score(prepared)
    for task, scores in zip(MIXED * 3, got, strict=True):
        for g, w in zip(scores, backend.score_per_option(task), strict=True):
            assert abs(g.logprob_sum - w.logprob_sum) < 1e-4 and g.num_tokens == w.num_tokens


def test_packed_row_layout_mask_and_positions():
    """One row `prefix + option_1 + option_2`: options see the prefix and themselves only,
    and each option's positions restart right after the prefix."""
    import torch

    from model_server.backends.hf_inputs import SharedInputs
    from model_server.backends.hf_packed import ALIGN, pack

    p = SharedInputs(prefix={"input_ids": torch.tensor([[5, 6, 7]])}, conts=[[8, 9], [10]],
                  spans=[(0, 2), (0, 1)])
    packed = pack([p], pad_id=0, device="cpu", mask_dtype=torch.float32, prefix_positions=None)
    ids = packed.inputs["input_ids"][0]
    assert ids.shape[0] == ALIGN and ids[:6].tolist() == [5, 6, 7, 8, 9, 10]
    assert packed.inputs["position_ids"][0, :6].tolist() == [0, 1, 2, 3, 4, 3]
    seen = (packed.inputs["attention_mask"][0, 0, :6, :6] == 0).int().tolist()
    assert seen == [[1, 0, 0, 0, 0, 0],
                    [1, 1, 0, 0, 0, 0],
                    [1, 1, 1, 0, 0, 0],
                    [1, 1, 1, 1, 0, 0],   # option 1, token 1
                    [1, 1, 1, 1, 1, 0],   # option 1, token 2
                    [1, 1, 1, 0, 0, 1]]   # option 2: prefix and itself, not option 1
    # predictors: option 1's tokens from the prefix's last position and its own first token;
    # option 2's token from the prefix's last position
    assert packed.predictors.tolist() == [2, 3, 2] and packed.targets.tolist() == [8, 9, 10]
    assert packed.counts == [[2, 1]]
