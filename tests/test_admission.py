"""Admission of the Janus and remote backends, over real model-server processes.

Janus: the tiny model (context 512 tokens, each image expanded to 16 image tokens
and its two delimiters) refuses what cannot fit before it queues, and answers the
same request once it fits. Remote: the limits known without calling the API
refuse a request at the server, and the stand-in HTTP API proves it cost 0 calls.
"""

from __future__ import annotations

import grpc
import pytest

from protos import seedbench_pb2 as pb
from protos import seedbench_pb2_grpc as pb_grpc
from tests.images import png
from tests.procs import model_server
from tests.tiny_models import tiny_model

EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED
IMAGE = png(1)


def prompt(text: str, n_images: int = 0) -> pb.Prompt:
    return pb.Prompt(text=text, images=[pb.Image(data=IMAGE) for _ in range(n_images)])


def score(text="What is shown?", n_images=0, options=("a", "b")) -> pb.ScoreRequest:
    return pb.ScoreRequest(request_id="s", prompt=prompt(text, n_images), options=list(options))


def generate(text="Say a letter.", n_images=0, max_new_tokens=4) -> pb.GenerateRequest:
    return pb.GenerateRequest(request_id="g", prompt=prompt(text, n_images),
                              max_new_tokens=max_new_tokens)


def generate_image(text="Draw a square.", with_text=False, max_new_tokens=0):
    return pb.GenerateImageRequest(request_id="i", prompt=prompt(text), with_text=with_text,
                                   max_new_tokens=max_new_tokens)


def refused(call, request, code=EXHAUSTED) -> str:
    """The refusal's message. That it comes before anything runs is counted where it can be:
    no backend call in process (the first test below), no HTTP call for the remote backend."""
    with pytest.raises(grpc.RpcError) as err:
        call(request, timeout=60)
    assert err.value.code() == code, err.value.details()
    return err.value.details()


def test_a_refused_request_never_reaches_the_device():
    """Admission runs before a task may queue, for every method: a refused request costs no
    device work (counted: not one backend call), and the same requests run once admitted."""
    import asyncio

    from model_server.backends.synthetic import SyntheticBackend
    from model_server.servicer import ModelServicer
    from serving.errors import TooLarge

    calls: list[str] = []

    class Counted(SyntheticBackend):
        refuse = True

        def admit(self, task):
            if self.refuse:
                raise TooLarge("over the model's context")

        def score(self, tasks):
            calls.append("Score")
            return super().score(tasks)

        def generate(self, task):
            calls.append("Generate")
            return super().generate(task)

        def generate_image(self, task):
            calls.append("GenerateImage")
            return super().generate_image(task)

    class Context:
        def time_remaining(self):
            return None

        async def abort(self, code, details, metadata=()):
            raise grpc.RpcError(code, details)

    requests = {"Score": score(), "Generate": generate(), "GenerateImage": generate_image()}
    servicer = ModelServicer(max_wait_ms=0)
    backend = Counted("m")
    servicer.attach(backend)

    async def call_each() -> list:
        return [await getattr(servicer, m)(r, Context()) for m, r in requests.items()]

    try:
        for method, request in requests.items():
            with pytest.raises(grpc.RpcError) as err:
                asyncio.run(getattr(servicer, method)(request, Context()))
            assert err.value.args == (EXHAUSTED, f"[{request.request_id}] over the model's context")
        assert calls == []
        backend.refuse = False
        servicer.attach(backend)  # a fresh batcher for this event loop
        assert len(asyncio.run(call_each())) == 3 and calls == list(requests)
    finally:
        servicer.device.shutdown()
        servicer.io.shutdown()


# ------------------------------------------------------------------------------------ Janus

@pytest.fixture(scope="module")
def janus(tmp_path_factory):
    model = tiny_model("janus", tmp_path_factory.getbasetemp())
    args = ["--backend", "janus", "--model", str(model), "--device", "cpu",
            "--backend-arg", "max_option_tokens=64", "--log-level", "WARNING"]
    with model_server(args) as (target, _), grpc.insecure_channel(target) as ch:
        yield pb_grpc.ModelServiceStub(ch)


def still_answers(stub) -> None:
    assert len(stub.Score(score(), timeout=60).scores) == 2


def test_janus_reports_its_context(janus):
    details = janus.Info(pb.InfoRequest(), timeout=30).details
    assert details["context_tokens"] == "512" and details["max_option_tokens"] == "64"


def test_janus_counts_each_image_as_its_image_tokens(janus):
    text = "Describe the pictures in words. " * 12  # 384 characters: ~420 tokens in the template
    assert janus.Generate(generate(text, n_images=0, max_new_tokens=32), timeout=60).request_id
    # Eight images add 8 x 18 tokens: the same text no longer fits.
    for call, request in [(janus.Generate, generate(text, n_images=8, max_new_tokens=32)),
                          (janus.Score, score(text, n_images=8))]:
        message = refused(call, request)
        assert message.startswith("[") and "prompt.text" in message
        assert "images expanded" in message and "context length of 512" in message
        still_answers(janus)


def test_janus_max_new_tokens_is_bounded_by_the_context(janus):
    message = refused(janus.Generate, generate(max_new_tokens=600))  # under --max-new-tokens
    assert "max_new_tokens: 600" in message and "context length of 512" in message
    message = refused(janus.GenerateImage, generate_image(with_text=True, max_new_tokens=500))
    assert "500 for max_new_tokens" in message and "context length of 512" in message
    still_answers(janus)


def test_janus_image_generation_needs_room_for_the_image_tokens(janus):
    message = refused(janus.GenerateImage, generate_image("paint " * 82))  # 492 characters
    assert "16 for the generated image's tokens" in message
    assert janus.GenerateImage(generate_image("paint " * 10), timeout=60).image.data
    still_answers(janus)


def test_janus_options_over_the_budget_are_refused(janus):
    message = refused(janus.Score, score(options=[f"option number {i:06d}" for i in range(4)]))
    assert "options: 4 options x 21 tokens = 84" in message and "max_option_tokens" in message
    still_answers(janus)


# ----------------------------------------------------------------------------------- remote

@pytest.fixture(scope="module")
def remote(api):
    args = ["--backend", "openai", "--model", "fake-model", "--max-wait-ms", "1",
            "--log-level", "WARNING"]
    for setting in (f"base_url={api.url}", "max_retries=0", "max_images=2",
                    "max_output_tokens=64", "max_prompt_chars=2000",
                    "capabilities=score,generate,generate_image"):
        args += ["--backend-arg", setting]
    with model_server(args, timeout=60) as (target, _), grpc.insecure_channel(target) as ch:
        yield pb_grpc.ModelServiceStub(ch)


REMOTE_REFUSALS = [
    # (case, method, request, status code, words the message must hold)
    ("max-new-tokens-over-the-model's-limit", "Generate", generate(max_new_tokens=65), EXHAUSTED,
     ["max_new_tokens: 65", "limit of 64", "max_output_tokens"]),
    ("image-with-text-over-the-model's-limit", "GenerateImage",
     generate_image(with_text=True, max_new_tokens=65), EXHAUSTED,
     ["max_new_tokens: 65", "max_output_tokens"]),
    ("prompt-over-the-text-bound", "Generate", generate("x" * 2001), EXHAUSTED,
     ["prompt.text: 2001 characters", "limit of 2000", "max_prompt_chars"]),
    ("options-over-the-text-bound", "Score", score("x" * 1998, options="ABCD"), EXHAUSTED,
     ["options: 4 options", "2002 characters", "max_prompt_chars"]),
    ("three-images", "Generate", generate("<img><img><img> Compare.", n_images=3), EXHAUSTED,
     ["prompt.images", "at most 2"]),
    ("options-not-letters", "Score", score(options=("a red apple", "a pear")),
     grpc.StatusCode.INVALID_ARGUMENT, ["options", "PPL for A/B/C/D"]),
]


@pytest.mark.parametrize("case,method,request_,code,words", REMOTE_REFUSALS,
                         ids=[c[0] for c in REMOTE_REFUSALS])
def test_remote_refusals_cost_no_http_call(remote, api, case, method, request_, code, words):
    api.reset()
    message = refused(getattr(remote, method), request_, code)
    for word in words:
        assert word in message, (word, message)
    assert api.requests == []  # refused at the server: the API never heard of it
    answer = remote.Generate(generate("Say a letter.", max_new_tokens=64), timeout=60)
    assert answer.usage.requests == 1 and len(api.requests) == 1  # the limit itself is allowed
