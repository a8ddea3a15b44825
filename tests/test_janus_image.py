"""L3 image generation through the model server with a tiny Janus model (real gRPC)."""

from __future__ import annotations

import asyncio
import hashlib
import io
import math

import grpc
import numpy as np
import pytest
from PIL import Image

from protos import seedbench_pb2 as pb
from protos import seedbench_pb2_grpc as pb_grpc
from serving.processes import free_port
from tests.procs import model_server

pytestmark = pytest.mark.slow


def png(arr: np.ndarray) -> pb.Image:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    data = buf.getvalue()
    return pb.Image(data=data, sha256=hashlib.sha256(data).hexdigest())


def noise_images(seed: int, n: int) -> list[pb.Image]:
    rng = np.random.default_rng(seed)
    return [png(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)) for _ in range(n)]


@pytest.fixture(scope="module")
def janus_dir(tmp_path_factory):
    from model_server.tiny_janus import make_tiny_janus

    return make_tiny_janus(tmp_path_factory.mktemp("janus") / "tiny-janus", seed=0)


@pytest.fixture(scope="module")
def stub(janus_dir):
    with model_server(["--backend", "janus", "--model", str(janus_dir)]) as (target, _proc):
        with grpc.insecure_channel(target) as ch:
            yield pb_grpc.ModelServiceStub(ch)


def gen(stub, text="a red cat on a mat", seed=0, images=(), with_text=False):
    req = pb.GenerateImageRequest(request_id="q", prompt=pb.Prompt(text=text, images=list(images)),
                                  seed=seed, with_text=with_text, max_new_tokens=8)
    return stub.GenerateImage(req, timeout=60)


def test_tiny_maker_is_deterministic_and_loads(janus_dir, tmp_path):
    from transformers import AutoProcessor, JanusForConditionalGeneration

    from model_server.tiny_janus import make_tiny_janus

    def weights(d):
        return hashlib.sha256((d / "model.safetensors").read_bytes()).hexdigest()

    assert weights(make_tiny_janus(tmp_path / "again", seed=0)) == weights(janus_dir)
    assert weights(make_tiny_janus(tmp_path / "other", seed=1)) != weights(janus_dir)
    model = JanusForConditionalGeneration.from_pretrained(janus_dir)
    proc = AutoProcessor.from_pretrained(janus_dir)
    assert model.generation_config.generation_kwargs["boi_token_id"] == \
        proc.tokenizer.convert_tokens_to_ids(proc.tokenizer.boi_token)
    assert model.config.image_token_id == proc.tokenizer.convert_tokens_to_ids(proc.image_token)


def test_generate_image_conditions_on_input_images(janus_dir):
    """Dim 26: the input images reach the prompt (greedy, so small changes show)."""
    from model_server import backends, requests

    backend = backends.create("janus", str(janus_dir), image_temperature="0")
    assert backend.info().details["image_temperature"] == "0.0"

    def run(images):
        req = pb.GenerateImageRequest(prompt=pb.Prompt(text="what comes next?", images=images))
        return backend.generate_image(requests.generate_image_task(req)).png

    first = run(noise_images(1, 3))
    assert run(noise_images(1, 3)) == first
    assert run(noise_images(2, 3)) != first
    assert run([]) != first


def test_info_advertises_image_generation(stub):
    info = stub.Info(pb.InfoRequest(), timeout=10)
    assert info.backend == "janus"
    assert info.capabilities.generate_image and info.capabilities.score
    assert len(info.fingerprint) == 16
    assert info.details["cfg_weight"] == "5.0"


def test_generate_image_is_png_and_seeded(stub):
    a, b, c = gen(stub, seed=7), gen(stub, seed=7), gen(stub, seed=8)
    img = Image.open(io.BytesIO(a.image.data))
    assert img.format == "PNG" and img.size == (32, 32)
    assert a.image.sha256 == hashlib.sha256(a.image.data).hexdigest()
    assert a.image.data == b.image.data
    assert a.image.data != c.image.data


def test_generate_image_with_text(stub):
    out = gen(stub, seed=1, with_text=True)
    assert out.text
    assert gen(stub, seed=1).text == ""


def test_score_one_finite_score_per_option(stub):
    req = pb.ScoreRequest(request_id="s", prompt=pb.Prompt(text="<img> Which is it?",
                                                           images=noise_images(5, 1)),
                          options=["a cat", "a dog", "a red bicycle", "none"])
    resp = stub.Score(req, timeout=30)
    assert len(resp.scores) == 4
    for s in resp.scores:
        assert math.isfinite(s.logprob_sum) and s.logprob_sum < 0 and s.num_tokens > 0
    eot = stub.Score(pb.ScoreRequest(request_id="s", prompt=req.prompt, options=["a cat"],
                                     include_end_of_turn=True), timeout=30)
    assert eot.scores[0].num_tokens == resp.scores[0].num_tokens + 1


@pytest.mark.parametrize("eot", [False, True])
def test_raw_prompt_scores_without_the_chat_template(stub, janus_dir, eot):
    """raw_prompt: the image token, the text and the option as sent (no <|User|> turn),
    equal to an independent forward over exactly those tokens."""
    import torch
    from transformers import AutoProcessor, JanusForConditionalGeneration

    from model_server.tiny_janus import IMAGE_TOKEN

    text, options = "Question: Which is it?\nAnswer:", [" a cat", " a dog", " none"]
    images = noise_images(6, 1)
    got = stub.Score(pb.ScoreRequest(request_id="raw", prompt=pb.Prompt(text=text, images=images),
                                     options=options, raw_prompt=True, include_end_of_turn=eot),
                     timeout=30).scores
    chat = stub.Score(pb.ScoreRequest(request_id="chat", prompt=pb.Prompt(text=text, images=images),
                                      options=options, include_end_of_turn=eot), timeout=30).scores
    proc = AutoProcessor.from_pretrained(janus_dir)
    model = JanusForConditionalGeneration.from_pretrained(janus_dir, dtype=torch.float32).eval()
    pil = [Image.open(io.BytesIO(im.data)).convert("RGB") for im in images]

    def enc(t):
        return proc(text=t, images=pil, generation_mode="text", return_tensors="pt")

    prompt_ids = enc(IMAGE_TOKEN + text)["input_ids"][0].tolist()
    for opt, g, c in zip(options, got, chat, strict=True):
        inputs = enc(IMAGE_TOKEN + text + opt + (proc.tokenizer.eos_token if eot else ""))
        ids = inputs["input_ids"][0].tolist()
        assert "<|User|>" not in proc.tokenizer.decode(ids)
        assert ids[:len(prompt_ids)] == prompt_ids
        with torch.no_grad():
            logp = torch.log_softmax(model(**inputs).logits[0].float(), dim=-1)
        want = sum(float(logp[k - 1, ids[k]]) for k in range(len(prompt_ids), len(ids)))
        assert g.num_tokens == len(ids) - len(prompt_ids) == len(opt.encode()) + int(eot)
        assert abs(g.logprob_sum - want) < 1e-4
        assert abs(g.logprob_sum - c.logprob_sum) > 1e-6  # the chat template changes the score


def test_generate_text(stub):
    resp = stub.Generate(pb.GenerateRequest(request_id="g", prompt=pb.Prompt(text="hello"),
                                            max_new_tokens=4), timeout=30)
    assert isinstance(resp.text, str)


def test_backend_without_image_generation_is_unimplemented():
    """A backend that keeps Backend's generate_image answers UNIMPLEMENTED."""
    from model_server.backends.base import Backend, BackendInfo, OptionScore
    from model_server.servicer import ModelServicer

    class ScoreOnly(Backend):
        def info(self):
            return BackendInfo(name="score-only", backend="test", fingerprint="0")

        def score(self, tasks):
            return [[OptionScore(-1.0, 1) for _ in t.options] for t in tasks]

    async def main():
        servicer = ModelServicer()
        servicer.attach(ScoreOnly())
        server = grpc.aio.server()
        pb_grpc.add_ModelServiceServicer_to_server(servicer, server)
        port = server.add_insecure_port(f"127.0.0.1:{free_port()}")
        await server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
                s = pb_grpc.ModelServiceStub(ch)
                info = await s.Info(pb.InfoRequest(), timeout=5)
                assert not info.capabilities.generate_image
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await s.GenerateImage(pb.GenerateImageRequest(prompt=pb.Prompt(text="x")),
                                          timeout=5)
                assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED
                ok = await s.Score(pb.ScoreRequest(prompt=pb.Prompt(text="x"), options=["a"]),
                                   timeout=5)
                assert len(ok.scores) == 1
        finally:
            await server.stop(0)
            servicer.device.shutdown(wait=False)

    asyncio.run(main())
