"""Batched generation returns every row exactly what it gets alone (float32, tiny models).

Rows of mixed prompt lengths, 0-3 images, different max_new_tokens, greedy and
seeded sampling, and a row that stops early at end-of-sequence, in one batch:
the batch's texts equal one-at-a-time generation's, and the greedy rows equal
transformers' own `generate` (the reference for positions, M-RoPE and images).
A row past its deadline is cut and refused while its batch-mates finish. Janus:
batched text as above, and batched images byte-identical to one-at-a-time's.
"""

from __future__ import annotations

import copy
import dataclasses
import io

import pytest
import torch
from PIL import Image

from model_server import backends
from model_server.backends import deadline_stop
from model_server.backends.base import GenerateImageTask, GenerateTask
from model_server.backends.decode_loop import Row, eos_ids
from serving.errors import DeadlinePassed, InvalidRequest
from tests.images import png
from tests.stepped_clock import TickingClock
from tests.tiny_models import tiny_model


def _img(seed, size=(48, 40)):
    return Image.open(io.BytesIO(png(seed, size))).convert("RGB")


ROWS = [  # prompt lengths, image counts, max_new_tokens and sampling all differ
    GenerateTask("one-image", "Colour?", [_img(1)], max_new_tokens=12),
    GenerateTask("three-images", "A much longer question that goes on for a while before it "
                 "asks: which?", [_img(2), _img(3, (64, 64)), _img(4, (30, 50))],
                 max_new_tokens=20),
    GenerateTask("sampled", "Step <img> then <img>; what next?", [_img(5), _img(6)],
                 max_new_tokens=7, temperature=0.8, seed=3),
    GenerateTask("no-image", "No image at all: pick one.", [], max_new_tokens=16),
    GenerateTask("sampled-hot", "Letters?", [_img(7)], max_new_tokens=9, temperature=1.5,
                 seed=11),
]
EARLY = 3  # ROWS[EARLY] is made to stop at end-of-sequence (below)


@dataclasses.dataclass
class Setup:
    backend: object
    alone: dict[str, str]  # each row's text, generated alone
    early_stop: int        # the EARLY row's token count: it ends at end-of-sequence


def _tokens(backend, task) -> list[int]:
    """A greedy row's new tokens, from the decoder directly (text hides special tokens)."""
    row = Row(backend.inputs.generation(task).enc, task.max_new_tokens)
    (tokens,) = backend.decoder.run([row], backend.max_batch_tokens)
    return tokens


@pytest.fixture(scope="module", params=["llava", "qwen2_vl"])
def hf(request, tmp_path_factory):
    """The tiny model with one more end-of-sequence token: the first token from its 4th on
    that the EARLY row has not written before, so that row stops early there; and every
    row's text generated alone."""
    b = backends.create("hf", str(tiny_model(request.param, tmp_path_factory.getbasetemp())),
                        device="cpu", dtype="float32")
    tokens = _tokens(b, ROWS[EARLY])
    k = next(k for k in range(3, len(tokens)) if tokens[k] not in tokens[:k])
    b.decoder.eos = b.decoder.eos | {tokens[k]}
    return Setup(b, {t.request_id: b.generate(t) for t in ROWS}, k + 1)


@pytest.fixture(scope="module")
def janus(tmp_path_factory):
    return backends.create("janus", str(tiny_model("janus", tmp_path_factory.getbasetemp())),
                           device="cpu", dtype="float32")


def _reference(backend, task: GenerateTask, eos: list[int]) -> str:
    """transformers' own `generate`, one prompt alone: greedy, or sampled at the task's
    temperature from the stream torch.manual_seed(seed) starts."""
    enc = backend.inputs.generation(task).enc
    torch.manual_seed(task.seed)
    sampled = {"do_sample": True, "temperature": task.temperature} if task.temperature else {
        "do_sample": False}
    out = backend.model.generate(**enc, max_new_tokens=task.max_new_tokens,
                                 pad_token_id=backend.inputs.pad_id, eos_token_id=eos, **sampled)
    return backend.inputs.decode(out[0, enc["input_ids"].shape[1]:])


def test_batched_generation_equals_one_at_a_time(hf):
    b = hf.backend
    assert b.info().details["generation"].startswith("batched")
    assert len(_tokens(b, ROWS[EARLY])) == hf.early_stop < ROWS[EARLY].max_new_tokens
    batched = b.generate_batch(ROWS)
    assert batched == [hf.alone[t.request_id] for t in ROWS]
    assert all(isinstance(t, str) and t for t in batched)
    for task, text in zip(ROWS, batched, strict=True):  # greedy and seeded sampling
        assert text == _reference(b, task, sorted(b.decoder.eos)), task.request_id


def _step_logits(backend, generate) -> list:
    """The output head's last-position logits at each forward `generate()` makes."""
    seen = []
    hook = backend.model.get_output_embeddings().register_forward_hook(
        lambda module, args, out: seen.append(out[:, -1].float().clone()))
    try:
        generate()
    finally:
        hook.remove()
    return seen


def _assert_every_step_as_alone(backend, rows, prompt_len, reference) -> None:
    """Texts can agree by luck (a tiny random model's argmax hardly depends on positions),
    so compare logits, step by step, within 1e-4: each greedy row alone against
    `reference(row)` (transformers' own `generate`: positions, M-RoPE offsets, images),
    and each row of a left-padded batch against itself alone. End-of-sequence is off,
    so every row runs all its steps."""
    rows = sorted(rows, key=prompt_len)  # the order the batch's rows take
    saved, backend.decoder.eos = backend.decoder.eos, set()
    try:
        alone = [_step_logits(backend, lambda t=t: backend.generate(t)) for t in rows]
        batched = _step_logits(backend, lambda: backend.generate_batch(rows))
        want = {i: _step_logits(backend, lambda t=t: reference(t))
                for i, t in enumerate(rows) if t.temperature == 0}
    finally:
        backend.decoder.eos = saved
    steps = rows[0].max_new_tokens
    assert len(batched) == steps and want
    for i, ref in want.items():
        assert len(ref) == len(alone[i]) == steps
        for step, (w, got) in enumerate(zip(ref, alone[i], strict=True)):
            assert (w - got).abs().max() < 1e-4, (rows[i].request_id, step)
    for step, got in enumerate(batched):
        for i, row_alone in enumerate(alone):
            assert (row_alone[step][0] - got[i]).abs().max() < 1e-4, (rows[i].request_id, step)


def test_every_step_computes_what_the_model_computes_alone(hf):
    b = hf.backend
    _assert_every_step_as_alone(
        b, [dataclasses.replace(t, max_new_tokens=6) for t in ROWS],
        lambda t: b.inputs.generation(t).enc["input_ids"].shape[1],
        lambda t: _reference(b, t, []))


def test_batch_result_independent_of_order_and_neighbours(hf):
    batch = [ROWS[4], ROWS[2], ROWS[2], ROWS[0]]
    assert hf.backend.generate_batch(batch) == [hf.alone[t.request_id] for t in batch]


def test_seeded_sampling_follows_its_seed_in_any_batch(hf):
    b, task = hf.backend, ROWS[2]
    other_seed = dataclasses.replace(task, request_id="reseeded", seed=4)
    got, _, reseeded = b.generate_batch([task, ROWS[0], other_seed])
    assert got == hf.alone[task.request_id] and reseeded == b.generate(other_seed) != got


def test_a_row_past_its_deadline_is_refused_while_its_batch_mates_finish(hf, monkeypatch):
    """Stepped clock: one look before the batch begins, then one per generated token. The
    row with deadline 5.5 is cut after its 5th token and refused; a row whose deadline had
    passed before the start never begins; the others finish with their whole answers."""
    long_rows = [GenerateTask(f"r{i}", "Say something long.", [], max_new_tokens=12,
                              temperature=0.0 if i % 2 else 0.9, seed=i) for i in range(3)]
    b = hf.backend
    alone = [b.generate(t) for t in long_rows]
    timed = GenerateTask("timed", "Say something long.", [], max_new_tokens=12, deadline=5.5)
    late = GenerateTask("late", "Say something long.", [], max_new_tokens=12, deadline=0.5)
    clock = TickingClock()
    monkeypatch.setattr(deadline_stop, "time", clock)
    out = b.generate_batch([long_rows[0], timed, long_rows[1], late, long_rows[2]])
    assert [out[0], out[2], out[4]] == alone
    assert isinstance(out[1], DeadlinePassed) and "stopped after 5 tokens" in str(out[1])
    assert isinstance(out[3], DeadlinePassed) and "before generation began" in str(out[3])
    assert clock.now == 6.0  # no look once no row with a deadline is left


def test_janus_batched_text_equals_one_at_a_time(janus):
    rows = [ROWS[0], ROWS[2], ROWS[3], GenerateTask("two", "Compare <img> and <img>.",
                                                    [_img(8), _img(9, (40, 64))], max_new_tokens=5)]
    batched = janus.generate_batch(rows)
    assert batched == [janus.generate(t) for t in rows]
    assert all(isinstance(t, str) for t in batched)

    def inputs(t):
        return janus._inputs(janus._render(t.text, len(t.images)), t.images)

    def reference(t):  # transformers' Janus text generation, greedy, one prompt alone
        config = copy.deepcopy(janus.model.generation_config)
        config.update(max_new_tokens=t.max_new_tokens, max_length=None, do_sample=False,
                      eos_token_id=None)
        janus.model.generate(**inputs(t), generation_mode="text", generation_config=config)

    _assert_every_step_as_alone(janus, [dataclasses.replace(t, max_new_tokens=4) for t in rows],
                                lambda t: inputs(t)["input_ids"].shape[1], reference)


IMAGE_ROWS = [
    GenerateImageTask("plain", "Draw a red square.", [], seed=1),
    GenerateImageTask("conditioned", "Like <img> but bluer.", [_img(10, (32, 32))], seed=2),
    GenerateImageTask("longer", "A much longer prompt that describes the picture to draw.", [],
                      seed=3),
    GenerateImageTask("with-text", "A cat.", [], seed=5, with_text=True, max_new_tokens=4),
]


def _reference_png(janus, task: GenerateImageTask) -> bytes:
    """transformers' own Janus image generation (`generate(generation_mode="image")`), one
    request alone, seeded through torch.manual_seed; input images enter the conditional
    half's placeholders as vision features while it embeds the prompt."""
    model = janus.model
    inputs = janus._inputs(janus._render(task.text, len(task.images)), task.images, mode="image")
    pixel_values = inputs.pop("pixel_values", None)
    embed = model.get_input_embeddings()
    if pixel_values is not None:
        feats = model.model.get_image_features(pixel_values).pooler_output
        feats = feats.reshape(-1, feats.shape[-1])

        def with_images(ids):
            out, where = embed(ids), ids == model.config.image_token_id
            if int(where.sum()) == feats.shape[0]:
                out = out.masked_scatter(where.unsqueeze(-1), feats.to(out.dtype))
            return out

        model.get_input_embeddings = lambda: with_images
    config = copy.deepcopy(model.generation_config)
    config.update(guidance_scale=janus.cfg_weight, do_sample=True,
                  temperature=janus.image_temperature)
    torch.manual_seed(task.seed)
    try:
        tokens = model.generate(**inputs, generation_mode="image", generation_config=config)
    finally:
        if pixel_values is not None:
            del model.get_input_embeddings
    return janus._png(tokens[0])


def test_janus_batched_images_equal_one_at_a_time(janus):
    """Byte-identical PNGs (and texts) batched and alone; alone equals transformers' own
    image generation for the same seed."""
    batched = janus.generate_image_batch(IMAGE_ROWS)
    alone = [janus.generate_image(t) for t in IMAGE_ROWS]
    assert [(b.png, b.text) for b in batched] == [(a.png, a.text) for a in alone]
    assert len({a.png for a in alone}) == len(alone) and alone[3].text
    assert alone[3].text == janus.generate(GenerateTask("t", "A cat.", [], max_new_tokens=4,
                                                        seed=5))
    for task, a in zip(IMAGE_ROWS[:2], alone, strict=False):
        assert a.png == _reference_png(janus, task), task.request_id


def test_janus_image_past_its_deadline_is_aborted_while_the_others_finish(janus, monkeypatch):
    alone = [janus.generate_image(t) for t in IMAGE_ROWS[:3:2]]
    clock = TickingClock()
    monkeypatch.setattr(deadline_stop, "time", clock)
    timed = dataclasses.replace(IMAGE_ROWS[1], deadline=5.5)
    out = janus.generate_image_batch([IMAGE_ROWS[0], timed, IMAGE_ROWS[2]])
    assert [out[0].png, out[2].png] == [a.png for a in alone]
    assert isinstance(out[1], DeadlinePassed) and "while the image was generated" in str(out[1])
    assert clock.now == 6.0  # a look before, then one per image token until the abort


def test_a_prompt_the_processor_refuses_fails_alone(hf):
    """The batch's prompts go through one processor call; one it refuses (the model's own
    image token written in the text: more image tokens than images) fails alone, with the
    field named, and the others get their texts."""
    b = hf.backend
    bad = GenerateTask("bad", f"Look: {b.inputs.processor.image_token}", [_img(1)],
                       max_new_tokens=3)
    out = b.generate_batch([ROWS[0], bad, ROWS[3]])
    assert isinstance(out[1], InvalidRequest) and "prompt" in str(out[1])
    assert [out[0], out[2]] == [hf.alone[ROWS[0].request_id], hf.alone[ROWS[3].request_id]]


@pytest.mark.parametrize("hf", ["llava"], indirect=True)  # one architecture is enough here
def test_concurrent_generate_calls_are_batched_over_grpc(hf):
    """A real server: concurrent Generate calls go through one device batch (the generate
    batcher's metrics say so) and each gets the text the backend gives it alone."""
    from concurrent.futures import ThreadPoolExecutor

    import grpc

    from protos import seedbench_pb2 as pb
    from protos import seedbench_pb2_grpc as pb_grpc
    from serving.processes import free_port
    from tests.procs import model_server
    from tests.test_metrics import scrape, value

    b = hf.backend
    tasks = [dataclasses.replace(t, images=[]) for t in ROWS if "<img>" not in t.text]
    saved, b.decoder.eos = b.decoder.eos, set(eos_ids(b.model, b.inputs.tokenizer))
    try:  # the model's own end-of-sequence, as the server has it
        want = [b.generate(t) for t in tasks]
    finally:
        b.decoder.eos = saved
    port = free_port()
    args = ["--backend", "hf", "--model", str(b.path), "--device", "cpu", "--max-batch",
            str(len(tasks)), "--max-wait-ms", "2000", "--metrics-port", str(port),
            "--log-level", "WARNING"]

    def request(t):
        return pb.GenerateRequest(request_id=t.request_id, prompt=pb.Prompt(text=t.text),
                                  max_new_tokens=t.max_new_tokens, temperature=t.temperature,
                                  seed=t.seed)

    with model_server(args) as (target, _), grpc.insecure_channel(target) as ch:
        stub = pb_grpc.ModelServiceStub(ch)
        with ThreadPoolExecutor(len(tasks)) as pool:
            got = list(pool.map(lambda t: stub.Generate(request(t), timeout=120).text, tasks))
        samples = scrape(port)
    assert got == want
    assert value(samples, "seedbench_batch_size_sum", batcher="generate") == len(tasks)
    assert value(samples, "seedbench_batch_size_count", batcher="generate") < len(tasks)
