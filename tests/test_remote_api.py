"""Remote backends end to end: a real gRPC model server talking HTTP to a stand-in remote API.

FakeAPI is a real HTTP server on a loopback port that answers like an
OpenAI-compatible service with deterministic values, records every request,
and can be scripted to fail, so retries and error mapping are exercised over
real sockets.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import math
import re
import socket
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
import pytest
from PIL import Image

from evaluator.run.client import CallFailed, ModelPool, RetryPolicy
from protos import seedbench_pb2 as pb
from protos import seedbench_pb2_grpc as pb_grpc
from tests.images import png
from tests.procs import model_server

KEY = "sk-test-secret-123"
TOP_LOGPROBS = [  # "C" is most likely; " C" is the same letter; "D" is absent
    {"token": "C", "logprob": -0.2}, {"token": "A", "logprob": -1.5},
    {"token": " C", "logprob": -2.5}, {"token": "B", "logprob": -3.0},
    {"token": "Sure", "logprob": -4.0},
]


def fake_token_logprob(token: str) -> float:
    """The fake model's log-prob of a (non-first) token: a pure function tests recompute by hand."""
    return -0.5 - len(token.strip()) / 10


def fake_tokenize(text: str) -> list[str]:
    return re.findall(r"\s*\S+|\s+", text)


IMAGE_TOKENS = 85  # what the stand-in charges per image part


def chat_prompt_tokens(content: list[dict]) -> int:
    """The stand-in's prompt token count: its tokens of the text parts, 85 per image."""
    return sum(IMAGE_TOKENS if p["type"] == "image_url" else len(fake_tokenize(p["text"]))
               for p in content)


class FakeAPI:
    """OpenAI-compatible stand-in: /v1/chat/completions, /v1/completions, /v1/images/generations."""

    def __init__(self):
        self.lock = threading.Lock()
        self.arrived = threading.Condition(self.lock)
        self.reset()
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def do_GET(self):  # the start-up check; not counted in `requests`
                api.respond(self, api.models_status, {"object": "list",
                                                      "data": [{"id": "fake-model"}]}, {})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                api.handle(self, body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def reset(self):
        with self.lock:
            self.requests: list[tuple[str, dict, dict]] = []
            self.script: list[tuple[int, dict, dict]] = []
            # substring of the request body -> the answer to every such request (a "poisoned" question)
            self.fail_when: dict[str, tuple[int | str, dict, dict]] = {}
            # substring of a chat request -> the assistant's text and first-token top_logprobs
            self.chat_replies: dict[str, tuple[str, list[dict]]] = {}
            self.slow_s = 3.0  # how long a "slow" fault holds the body back
            self.models_status: int = 200  # GET /v1/models
            self.delay_s = 0.0
            # hold each request until this many are in flight at once (5 s at most): proves
            # concurrency by a count, where a delay would need a timing
            self.hold_until_in_flight = 0
            self.in_flight = 0
            self.max_in_flight = 0

    def start(self) -> FakeAPI:
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def calls(self, path: str) -> list[dict]:
        return [b for p, _, b in self.requests if p == path]

    def handle(self, h: BaseHTTPRequestHandler, body: dict):
        with self.lock:
            self.requests.append((h.path, h.headers, body))  # headers: case-insensitive
            scripted = self.script.pop(0) if self.script else None
            text = json.dumps(body)
            scripted = scripted or next((answer for needle, answer in self.fail_when.items()
                                         if needle in text), None)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            self.arrived.notify_all()
            self.arrived.wait_for(lambda: self.max_in_flight >= self.hold_until_in_flight, timeout=5)
        try:
            if self.delay_s:
                time.sleep(self.delay_s)
            route = {"/v1/chat/completions": self.chat, "/v1/completions": self.completions,
                     "/v1/images/generations": self.images}.get(h.path)
            status, payload, headers = (200, openai_shape(h.path, body, route(body)), {}) \
                if route else (
                404, {"error": {"message": f"no route {h.path}"}}, {})
            if scripted:
                fault, fault_payload, headers = scripted
                if isinstance(fault, int):  # an HTTP status with its own body
                    status, payload = fault, fault_payload
                else:  # a transport fault around the real answer
                    status = fault
        finally:
            with self.lock:
                self.in_flight -= 1
        self.respond(h, status, payload, headers)

    def respond(self, h: BaseHTTPRequestHandler, status: int | str, payload: dict,
                headers: dict) -> None:
        """Send the answer, or one of the faults: "reset" (connection reset, no answer),
        "truncate" (the body cut short of its Content-Length), "badjson" (a complete body that
        is not JSON), "slow" (the body held back for slow_s seconds)."""
        if status == "reset":
            h.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            h.close_connection = True
            return
        data = json.dumps(payload).encode()
        if status == "badjson":
            data = data[: len(data) // 2]
        h.send_response(200 if isinstance(status, str) else status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        for k, v in headers.items():
            h.send_header(k, v)
        h.end_headers()
        if status == "truncate":
            h.wfile.write(data[: len(data) // 2])
            h.wfile.flush()
            h.close_connection = True
            return
        if status == "slow":
            h.wfile.flush()
            time.sleep(self.slow_s)
        h.wfile.write(data)

    def chat(self, body: dict) -> dict:
        content = body["messages"][0]["content"]
        prompt = "".join(p.get("text", "") for p in content)
        usage = {"prompt_tokens": chat_prompt_tokens(content)}
        reply = next((r for needle, r in self.chat_replies.items() if needle in prompt), None)
        if body.get("logprobs"):
            text, top = reply or ("C", TOP_LOGPROBS)
            top = top[: body.get("top_logprobs", 20)]
            first = top[0]["token"] if top else text
            return {"choices": [{"message": {"role": "assistant", "content": text},
                                 "logprobs": {"content": [{"token": first, "logprob": -0.2,
                                                           "top_logprobs": top}]}}],
                    "usage": {**usage, "completion_tokens": 1}}
        if reply:
            text = reply[0]
        else:
            kinds = ",".join("image" if p["type"] == "image_url" else "text" for p in content)
            text = f"parts={kinds} max={body.get('max_tokens')} seed={body.get('seed')}"
        return {"choices": [{"message": {"role": "assistant", "content": text}}],
                "usage": {**usage, "completion_tokens": len(fake_tokenize(text))}}

    def completions(self, body: dict) -> dict:
        prompt = body["prompt"]
        tokens = fake_tokenize(prompt)
        offsets, pos = [], 0
        for t in tokens:
            offsets.append(pos)
            pos += len(t)
        lps = [None] + [fake_token_logprob(t) for t in tokens[1:]]
        for _ in range(body.get("max_tokens") or 0):  # generated tokens after the prompt
            tokens.append(" X")
            offsets.append(pos)
            lps.append(-0.01)
            pos += 2
        top = [None] + [{t: lp} for t, lp in zip(tokens[1:], lps[1:], strict=True)]
        logprobs = {"tokens": tokens, "token_logprobs": lps, "text_offset": offsets,
                    "top_logprobs": top}
        n_prompt = len(fake_tokenize(prompt))
        return {"choices": [{"text": prompt if body.get("echo") else "", "logprobs": logprobs}],
                "usage": {"prompt_tokens": n_prompt, "completion_tokens": len(tokens) - n_prompt}}

    def images(self, body: dict) -> dict:
        buf = io.BytesIO()  # JPEG on purpose: the backend must hand back PNG
        Image.new("RGB", (16, 12), (200, 30, 30)).save(buf, format="JPEG")
        return {"data": [{"b64_json": base64.b64encode(buf.getvalue()).decode()}]}


def openai_shape(path: str, body: dict, answer: dict) -> dict:
    """The envelope the OpenAI API puts around an answer: ids, object type, model, choice
    indexes and finish reasons."""
    if path == "/v1/images/generations":
        return {"created": 1_700_000_000, **answer}
    kind = "chat.completion" if path == "/v1/chat/completions" else "text_completion"
    choices = [{"index": i, "finish_reason": "stop", **c}
               for i, c in enumerate(answer.get("choices", []))]
    return {"id": "cmpl-stand-in", "object": kind, "created": 1_700_000_000,
            "model": body.get("model", ""), **answer, "choices": choices}


def decode_data_url(url: str) -> Image.Image:
    head, b64 = url.split(",", 1)
    assert head in ("data:image/png;base64", "data:image/jpeg;base64"), head
    return Image.open(io.BytesIO(base64.b64decode(b64))).convert("RGB")


def pixels(data: bytes) -> bytes:
    return Image.open(io.BytesIO(data)).convert("RGB").tobytes()


# -- fixtures ---------------------------------------------------------------------------------

@pytest.fixture(autouse=True)
def _clean(request):
    if "api" in request.fixturenames:
        request.getfixturevalue("api").reset()


def _serve(backend: str, api: FakeAPI, *extra: str):
    args = ["--backend", backend, "--model", "fake-model", "--max-wait-ms", "1",
            "--backend-arg", f"base_url={api.url}", "--backend-arg", "max_retries=2",
            "--backend-arg", "backoff_s=0.01", "--backend-arg", "timeout_s=10"]
    for e in extra:
        args += ["--backend-arg", e]
    return model_server(args, timeout=60)


@pytest.fixture(scope="module")
def chat_target(api):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OPENAI_API_KEY", KEY)  # the server process inherits it at start
        ctx = _serve("openai", api, "score_mode=chat-letter",
                     "capabilities=score,generate,generate_image")
        target, _ = ctx.__enter__()
    try:
        yield target
    finally:
        ctx.__exit__(None, None, None)


@pytest.fixture(scope="module")
def chat_stub(chat_target):
    with grpc.insecure_channel(chat_target) as ch:
        yield pb_grpc.ModelServiceStub(ch)


@pytest.fixture(scope="module")
def echo_stub(api):
    with _serve("vllm", api) as (target, _):
        with grpc.insecure_channel(target) as ch:
            yield pb_grpc.ModelServiceStub(ch)


def score_req(text, options, images=(), rid="q1"):
    return pb.ScoreRequest(request_id=rid, options=list(options),
                           prompt=pb.Prompt(text=text, images=[pb.Image(data=d) for d in images]))


def gen_req(text, images=(), **kw):
    return pb.GenerateRequest(request_id="g1", prompt=pb.Prompt(
        text=text, images=[pb.Image(data=d) for d in images]), **kw)


# -- chat-letter: PPL for A/B/C/D ---------------------------------------------------------------

def test_info_names_mode(chat_stub, echo_stub):
    info = chat_stub.Info(pb.InfoRequest(), timeout=10)
    assert (info.name, info.backend) == ("fake-model", "openai")
    assert info.details["score_mode"] == "chat-letter"
    assert "PPL for A/B/C/D" in info.details["score_method"]
    caps = info.capabilities
    assert caps.score and caps.generate and caps.generate_image
    other = echo_stub.Info(pb.InfoRequest(), timeout=10)
    assert other.backend == "vllm" and other.details["score_mode"] == "completions-echo"
    assert other.fingerprint != info.fingerprint and len(info.fingerprint) == 16
    assert not other.capabilities.generate_image


def test_letters_pick_c(chat_stub, api):
    resp = chat_stub.Score(score_req("Which one?\nA. x\nB. y\nC. z\nD. w", "ABCD", [png(1)]),
                           timeout=10)
    got = [s.logprob_sum for s in resp.scores]
    c = math.log(math.exp(-0.2) + math.exp(-2.5))  # "C" and " C" are the same answer
    floor = -4.0 - math.log(20)                    # "D" is absent from the top 20
    assert got == pytest.approx([-1.5, -3.0, c, floor])
    assert [s.num_tokens for s in resp.scores] == [1, 1, 1, 1]
    assert max(range(4), key=lambda i: got[i]) == 2
    (body,) = api.calls("/v1/chat/completions")
    assert body["logprobs"] is True and body["top_logprobs"] == 20 and body["max_tokens"] == 1
    assert body["model"] == "fake-model"


def test_non_letters_refused(chat_stub, api):
    with pytest.raises(grpc.RpcError) as err:
        chat_stub.Score(score_req("What is it?", ["a red apple", "a pear"]), timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "PPL for A/B/C/D" in err.value.details() and "[q1]" in err.value.details()
    assert api.requests == []  # refused before any HTTP call


# -- generate -----------------------------------------------------------------------------------

def test_generate_images_in_place(chat_stub, api):
    resp = chat_stub.Generate(gen_req("Look <img> then <img> and answer", [png(1), png(2)],
                                      max_new_tokens=7, seed=5), timeout=10)
    assert resp.text == "parts=text,image,text,image,text max=7 seed=5"
    ((path, headers, body),) = api.requests
    assert headers["Authorization"] == f"Bearer {KEY}"
    parts = body["messages"][0]["content"]
    texts = [p.get("text") for p in parts if p["type"] == "text"]
    assert texts == ["Look ", " then ", " and answer"]
    urls = [p["image_url"]["url"] for p in parts if p["type"] == "image_url"]
    assert [decode_data_url(u).tobytes() for u in urls] == [pixels(png(1)), pixels(png(2))]
    assert body["temperature"] == 0


def test_generate_images_first_without_placeholder(chat_stub, api):
    resp = chat_stub.Generate(gen_req("Describe both.", [png(3), png(4)]), timeout=10)
    assert resp.text.startswith("parts=image,image,text ")
    parts = api.calls("/v1/chat/completions")[0]["messages"][0]["content"]
    assert decode_data_url(parts[0]["image_url"]["url"]).tobytes() == pixels(png(3))
    assert parts[2] == {"type": "text", "text": "Describe both."}


def test_generate_image_returns_png(chat_stub, api):
    resp = chat_stub.GenerateImage(pb.GenerateImageRequest(
        request_id="i1", prompt=pb.Prompt(text="A red square")), timeout=10)
    assert resp.image.data.startswith(b"\x89PNG\r\n\x1a\n")
    im = Image.open(io.BytesIO(resp.image.data))
    assert im.format == "PNG" and im.size == (16, 12)
    (body,) = api.calls("/v1/images/generations")
    assert body["prompt"] == "A red square" and body["response_format"] == "b64_json"


# -- failures -----------------------------------------------------------------------------------

def test_500_then_200_is_retried(chat_stub, api):
    api.script = [(500, {"error": {"message": "boom"}}, {})]
    resp = chat_stub.Generate(gen_req("Hi?"), timeout=10)
    assert resp.text.startswith("parts=text")
    assert len(api.calls("/v1/chat/completions")) == 2


def test_persistent_503_is_unavailable(chat_stub, api):
    api.script = [(503, {"error": {"message": "overloaded"}}, {})] * 3  # max_retries=2
    with pytest.raises(grpc.RpcError) as err:
        chat_stub.Generate(gen_req("Hi?"), timeout=10)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "503" in err.value.details() and "overloaded" in err.value.details()
    assert len(api.requests) == 3


def test_401_names_env_var(chat_stub, api):
    api.script = [(401, {"error": {"message": "Incorrect API key provided"}}, {})]
    with pytest.raises(grpc.RpcError) as err:
        chat_stub.Generate(gen_req("Hi?"), timeout=10)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    details = err.value.details()
    assert "OPENAI_API_KEY" in details and "Incorrect API key" in details
    assert KEY not in details
    assert len(api.requests) == 1  # not retried


def test_400_is_invalid_argument_with_api_message(chat_stub, api):
    api.script = [(400, {"error": {"message": "image too small"}}, {})]
    with pytest.raises(grpc.RpcError) as err:
        chat_stub.Generate(gen_req("Hi?"), timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "image too small" in err.value.details()


# -- completions-echo: PPL (vLLM defaults) --------------------------------------------------------

def test_echo_scores_match_hand_sums(echo_stub, api):
    resp = echo_stub.Score(score_req("What color is the apple?", ["red apple", "green"]),
                           timeout=10)
    # full text "What color is the apple?\nAnswer: red apple": option tokens " red", " apple"
    red = (-0.5 - 3 / 10) + (-0.5 - 5 / 10)
    green = -0.5 - 5 / 10
    assert [s.logprob_sum for s in resp.scores] == pytest.approx([red, green])
    assert [s.num_tokens for s in resp.scores] == [2, 1]
    bodies = sorted(api.calls("/v1/completions"), key=lambda b: b["prompt"])
    assert [b["prompt"] for b in bodies] == ["What color is the apple?\nAnswer: green",
                                             "What color is the apple?\nAnswer: red apple"]
    assert all(b["echo"] is True and b["logprobs"] == 1 and b["max_tokens"] == 1 for b in bodies)
    assert all("Authorization" not in h for _, h, _ in api.requests)  # VLLM_API_KEY unset


def test_echo_refuses_images(echo_stub):
    with pytest.raises(grpc.RpcError) as err:
        echo_stub.Score(score_req("What is it?", ["x", "y"], [png(1)]), timeout=10)
    assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert "text only" in err.value.details()


# -- one retry layer: what an upstream failure costs ------------------------------------------------

MAX_CALLS = 3  # max_retries=2 in _serve: the documented bound is max_retries + 1 calls per request


def _letter_question(i: int, poisoned: bool = False) -> pb.ScoreRequest:
    text = f"Question {i}{' POISON' if poisoned else ''}?\nA. x\nB. y"
    return score_req(text, "AB", rid=f"q{i}")


def _chat_calls_per_question(api: FakeAPI) -> dict[str, int]:
    counts: dict[str, int] = {}
    for body in api.calls("/v1/chat/completions"):
        text = body["messages"][0]["content"][-1]["text"]
        key = text.split("?")[0]
        counts[key] = counts.get(key, 0) + 1
    return counts


def test_upstream_failure_costs_at_most_the_documented_calls_through_the_evaluator(
        chat_target, api):
    api.fail_when = {"POISON": (503, {"error": {"message": "overloaded"}}, {})}

    async def main():
        pool = ModelPool([chat_target], retry=RetryPolicy(attempts=5, backoff_s=0.01))
        await pool.connect()
        try:
            with pytest.raises(CallFailed) as err:
                await pool.call("Score", _letter_question(0, poisoned=True), deadline_s=30)
            return err.value
        finally:
            await pool.close()

    failure = asyncio.run(main())
    assert failure.attempts == 1  # the evaluator did not retry an upstream failure
    assert failure.code == grpc.StatusCode.UNAVAILABLE and "503" in str(failure)
    assert _chat_calls_per_question(api) == {"Question 0 POISON": MAX_CALLS}


def test_failing_question_in_a_batch_costs_its_neighbours_nothing(api):
    """One permanently failing question among six sent at once: the five others are asked once."""
    api.fail_when = {"POISON": (500, {"error": {"message": "boom"}}, {})}
    args = ["--backend", "openai", "--model", "fake-model", "--max-wait-ms", "300",  # one batch
            "--max-batch", "8", "--backend-arg", f"base_url={api.url}",
            "--backend-arg", "max_retries=2", "--backend-arg", "backoff_s=0.01"]

    async def main(target):
        async with grpc.aio.insecure_channel(target) as ch:
            stub = pb_grpc.ModelServiceStub(ch)
            calls = [stub.Score(_letter_question(i, poisoned=(i == 2)), timeout=30)
                     for i in range(6)]
            return await asyncio.gather(*calls, return_exceptions=True)

    with model_server(args, timeout=60) as (target, _):
        results = asyncio.run(main(target))
    failed = [i for i, r in enumerate(results) if isinstance(r, Exception)]
    assert failed == [2]
    assert results[2].code() == grpc.StatusCode.UNAVAILABLE
    assert all(len(r.scores) == 2 for i, r in enumerate(results) if i != 2)
    counts = _chat_calls_per_question(api)
    assert counts.pop("Question 2 POISON") == MAX_CALLS
    assert counts == {f"Question {i}": 1 for i in (0, 1, 3, 4, 5)}
