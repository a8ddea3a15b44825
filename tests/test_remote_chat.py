"""Remote chat models end to end: model-server processes in front of a loopback stand-in API.

Faults are injected at the stand-in (429 with Retry-After, 500, a truncated or
invalid JSON body, a body slower than the timeout, a connection reset) and every
upstream request is counted per question; secrets are grepped for in the
server's log and the gRPC messages; usage is compared with the stand-in's own
token counts.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import grpc
import pytest

from model_server import backends
from model_server.backends.base import ScoreTask
from model_server.backends.remote_client import AdaptiveLimit
from protos import seedbench_pb2 as pb
from protos import seedbench_pb2_grpc as pb_grpc
from protos.wire import ERROR_SOURCE_KEY, ERROR_SOURCE_UPSTREAM
from tests.images import png
from tests.procs import model_server, refusing_port
from tests.test_remote_api import (
    IMAGE_TOKENS,
    FakeAPI,
    chat_prompt_tokens,
    fake_tokenize,
    gen_req,
    score_req,
)

KEY = "sk-chat-secret-0123456789"
IMAGE_KEY = "sk-image-secret-9876543210"


@pytest.fixture(scope="module")
def images_api():
    fake = FakeAPI().start()
    yield fake
    fake.stop()


@pytest.fixture(autouse=True)
def _clean(api, images_api):
    api.reset()
    images_api.reset()


@contextlib.contextmanager
def serve(api: FakeAPI, *settings: str, env: dict[str, str] | None = None,
          server_args: tuple[str, ...] = ()):
    args = [*server_args, "--backend", "openai", "--model", "chat-model", "--max-wait-ms", "1",
            "--backend-arg", f"base_url={api.url}", "--backend-arg", "backoff_s=0.01",
            "--backend-arg", "capabilities=score,generate,generate_image"]
    for s in settings:
        args += ["--backend-arg", s]
    with pytest.MonkeyPatch.context() as mp:  # the server process inherits these at start
        for k, v in (env or {}).items():
            mp.setenv(k, v)
        with model_server(args, timeout=60) as running:
            mp.undo()
            yield running


@pytest.fixture(scope="module")
def server(api, images_api):
    """Chat-letter scoring, max_retries=6, a 1 s timeout, images on a second API with its key;
    logging at DEBUG (the most a key could leak through)."""
    with serve(api, "max_retries=6", "timeout_s=1", f"image_base_url={images_api.url}",
               "image_api_key_env=IMAGE_KEY", env={"OPENAI_API_KEY": KEY, "IMAGE_KEY": IMAGE_KEY},
               server_args=("--log-level", "DEBUG")) as (target, proc):
        with grpc.insecure_channel(target) as ch:
            yield pb_grpc.ModelServiceStub(ch), proc


def letters(text: str, rid: str = "q1") -> pb.ScoreRequest:
    return score_req(f"{text}\nA. red\nB. green\nC. blue\nD. grey", "ABCD", rid=rid)


# -- generate: the way to evaluate a chat API -------------------------------------------------------

def test_generate_sends_images_in_place_greedy_and_reports_usage(server, api):
    stub, _ = server
    api.chat_replies = {"Which colour": ("The answer is B.", [])}
    resp = stub.Generate(gen_req("Which colour <img> is it?", [png(1)], max_new_tokens=8,
                                 temperature=0.0), timeout=30)
    assert resp.text == "The answer is B."
    (body,) = api.calls("/v1/chat/completions")
    parts = body["messages"][0]["content"]
    assert [p["type"] for p in parts] == ["text", "image_url", "text"]
    assert body["temperature"] == 0 and body["max_tokens"] == 8
    assert resp.usage.requests == 1 and resp.usage.retries == 0
    assert resp.usage.prompt_tokens == chat_prompt_tokens(parts) == IMAGE_TOKENS + 5
    assert resp.usage.completion_tokens == len(fake_tokenize("The answer is B.")) == 4


def test_generate_calls_run_concurrently(server, api):
    """Generate does not queue on a device thread: a remote backend computes nothing locally.
    The stand-in holds each call until all six are in flight (a serial server times out)."""
    stub, _ = server
    api.hold_until_in_flight = 6

    async def main():
        async with grpc.aio.insecure_channel(target_of(stub)) as ch:
            s = pb_grpc.ModelServiceStub(ch)
            return await asyncio.gather(*(s.Generate(gen_req(f"Q{i}?"), timeout=30)
                                          for i in range(6)))

    assert len(asyncio.run(main())) == 6
    assert api.max_in_flight == 6


def target_of(stub) -> str:
    return stub.Generate._channel.target().decode()  # noqa: SLF001 - the stub's own channel


# -- letter mode: sound or unparsed -----------------------------------------------------------------

def test_letter_mode_without_any_letter_is_unparsed_not_a(server, api):
    stub, _ = server
    api.chat_replies = {"Refused": ("I cannot tell.", [{"token": "I", "logprob": -0.1},
                                                         {"token": "Sorry", "logprob": -2.0}])}
    resp = stub.Score(letters("Refused?"), timeout=30)
    assert resp.unparsed and list(resp.scores) == []
    assert "none of A, B, C, D" in resp.unparsed_reason and "'I'" in resp.unparsed_reason
    assert resp.usage.requests == 1


def test_letter_mode_with_some_letters_floors_only_the_missing(server, api):
    stub, _ = server
    api.chat_replies = {"Partly": ("B", [{"token": "B", "logprob": -0.3},
                                         {"token": "The", "logprob": -1.0}])}
    resp = stub.Score(letters("Partly?"), timeout=30)
    assert not resp.unparsed
    got = [s.logprob_sum for s in resp.scores]
    assert got[1] == pytest.approx(-0.3)
    assert got[0] == got[2] == got[3] < -1.0  # the floor: below every listed token


# -- faults: one retry layer, a bounded cost per question -------------------------------------------

FAULTS = [(429, {"error": {"message": "rate limited"}}, {"Retry-After": "0.2"}),
          (500, {"error": {"message": "boom"}}, {}),
          ("badjson", {}, {}), ("truncate", {}, {}), ("slow", {}, {}), ("reset", {}, {})]


def test_every_fault_is_retried_and_the_question_completes(server, api):
    stub, proc = server
    api.slow_s = 2.5  # past the server's 1 s timeout
    api.script = list(FAULTS)
    resp = stub.Generate(gen_req("Faulty?"), timeout=60)
    assert resp.text.startswith("parts=text")
    assert len(api.calls("/v1/chat/completions")) == len(FAULTS) + 1
    assert (resp.usage.requests, resp.usage.retries) == (len(FAULTS) + 1, len(FAULTS))
    # the Retry-After wait was the one taken (the wait itself: test_remote_backend)
    assert "(returned HTTP 429: rate limited); retry in 0.20s" in Path(proc.log).read_text()


def test_a_question_over_its_budget_fails_upstream_after_exactly_its_budget(server, api):
    stub, _ = server
    api.fail_when = {"Doomed": (503, {"error": {"message": "overloaded"}}, {})}
    with pytest.raises(grpc.RpcError) as err:
        stub.Score(letters("Doomed?"), timeout=60)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert (ERROR_SOURCE_KEY, ERROR_SOURCE_UPSTREAM) in tuple(err.value.trailing_metadata())
    assert "HTTP 503 after 7 attempt(s)" in err.value.details()
    assert len(api.calls("/v1/chat/completions")) == 7  # 1 + max_retries=6


def test_permanent_4xx_is_not_retried(server, api):
    stub, _ = server
    api.fail_when = {"Bad": (400, {"error": {"message": "image too small"}}, {})}
    with pytest.raises(grpc.RpcError) as err:
        stub.Score(letters("Bad?"), timeout=30)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert len(api.requests) == 1


def test_echo_question_budget_is_shared_by_its_option_requests(api):
    """completions-echo: four option requests share one question's retries (max_retries=2)."""
    api.fail_when = {"Answer: c": (500, {"error": {"message": "boom"}}, {})}
    with serve(api, "score_mode=completions-echo", "max_retries=2") as (target, _):
        with grpc.insecure_channel(target) as ch:
            with pytest.raises(grpc.RpcError):
                pb_grpc.ModelServiceStub(ch).Score(score_req("Pick?", ["a", "b", "c", "d"]),
                                                   timeout=30)
    assert len(api.calls("/v1/completions")) <= 4 + 2
    assert len([b for b in api.calls("/v1/completions") if b["prompt"].endswith(" c")]) == 3


def test_adaptive_limit_halves_on_429_and_recovers_slowly():
    limit = AdaptiveLimit(8)
    limit.throttled()
    limit.throttled()
    assert int(limit.limit) == 2
    for _ in range(2):
        limit.succeeded()
    assert int(limit.limit) == 2  # +1 per limit's worth of successes, not per success
    for _ in range(60):
        limit.succeeded()
    assert limit.limit == 8  # never above the cap
    for _ in range(10):
        limit.throttled()
    assert limit.limit == 1


def test_429s_lower_the_calls_in_flight(api):
    b = backends.create("openai", "chat-model", base_url=api.url, concurrency="8",
                        max_retries="5", backoff_s="0.01")
    api.delay_s = 0.2
    api.script = [(429, {"error": {"message": "slow down"}}, {"Retry-After": "0"})] * 2
    first = b.score([letters_task(i) for i in range(8)])
    assert all(not isinstance(r, Exception) for r in first)
    assert api.max_in_flight > 4  # up to the cap of 8 before any 429
    assert b.client.limit.limit <= 5  # halved twice (to 2), then +1/limit per success
    api.reset()
    api.delay_s = 0.2
    b.score([letters_task(i) for i in range(8)])
    assert api.max_in_flight <= 6 < 8  # below the cap: the limit regrows slowly


def letters_task(i: int) -> ScoreTask:
    return ScoreTask(f"q{i}", f"Question {i}?\nA. x\nB. y", [], ["A", "B"])


# -- secrets ----------------------------------------------------------------------------------------

def test_key_echoed_by_a_401_reaches_no_log_and_no_grpc_message(server, api):
    stub, proc = server
    api.fail_when = {"Echo": (401, {"error": {"message": f"Incorrect API key provided: {KEY}. "
                                              f"Header was 'Bearer {KEY}'"}}, {})}
    with pytest.raises(grpc.RpcError) as gen_err:
        stub.Generate(gen_req("Echo?"), timeout=30)
    with pytest.raises(grpc.RpcError) as score_err:
        stub.Score(letters("Echo?"), timeout=30)
    log = Path(proc.log).read_text()  # each failure is logged before its answer is sent
    assert "Incorrect API key provided" in log  # the failure is logged, redacted
    for err in (gen_err.value, score_err.value):
        assert err.code() == grpc.StatusCode.PERMISSION_DENIED
        assert KEY not in err.details() and "Incorrect API key provided" in err.details()
        assert "[redacted]" in err.details()
    assert api.requests[0][1]["Authorization"] == f"Bearer {KEY}"
    assert KEY not in log


def test_key_from_a_file_not_the_command_line(api, tmp_path):
    key_file = tmp_path / "key.txt"
    key_file.write_text(KEY + "\n")
    with serve(api, f"api_key_file={key_file}", env={"OPENAI_API_KEY": "sk-wrong-one-000000"}) \
            as (target, proc):
        with grpc.insecure_channel(target) as ch:
            pb_grpc.ModelServiceStub(ch).Generate(gen_req("Hi?"), timeout=30)
        assert KEY not in " ".join(proc.cmd)
    assert api.requests[0][1]["Authorization"] == f"Bearer {KEY}"


# -- composite L3 model: chat + an images endpoint elsewhere ----------------------------------------

def test_composite_model_sends_images_to_the_images_endpoint_with_its_key(server, api, images_api):
    stub, _ = server
    info = stub.Info(pb.InfoRequest(), timeout=10)
    assert info.capabilities.generate_image and info.capabilities.generate
    assert "no input image" in info.details["generate_image_inputs"]
    resp = stub.GenerateImage(pb.GenerateImageRequest(
        request_id="i1", prompt=pb.Prompt(text="A red square"), with_text=True), timeout=30)
    assert resp.image.data.startswith(b"\x89PNG")
    (body,) = images_api.calls("/v1/images/generations")
    assert body["model"] == "chat-model" and body["prompt"] == "A red square"
    assert images_api.requests[0][1]["Authorization"] == f"Bearer {IMAGE_KEY}"
    assert len(api.calls("/v1/chat/completions")) == 1  # the text part
    assert resp.usage.requests == 2


# -- start-up errors: one line, no traceback -------------------------------------------------------

def _serve_cli(*args: str):
    import subprocess
    import sys

    from serving.processes import ROOT, child_env
    return subprocess.run([sys.executable, "-m", "model_server.cli", "serve", "--port", "0", *args],
                          cwd=ROOT, env=child_env(), capture_output=True, text=True, timeout=120)


def test_unreachable_base_url_stops_the_server_in_one_line():
    with refusing_port() as port:
        out = _serve_cli("--backend", "openai", "--model", "m", "--backend-arg",
                         f"base_url=http://127.0.0.1:{port}/v1")
    assert out.returncode == 1 and "Traceback" not in out.stderr + out.stdout
    errors = [line for line in out.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1 and "cannot reach http://127.0.0.1:" in errors[0]


def test_serve_without_a_model_is_one_line():
    out = _serve_cli("--backend", "openai")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.strip() == ("seedbench-model-server serve: error: --backend openai needs "
                                  "--model (the remote model id) (see --help)")
