"""Bad gRPC requests against real server processes: each gets its documented status code
and a message naming the field or limit, and the server keeps answering good requests at
normal latency. Also: admission against a real model's context, deadlines on the device
thread, queue-full backpressure, stuck-device health and shutdown while busy
(docs/reliability.md lists the codes and limits these tests hold the server to)."""

from __future__ import annotations

import io
import json
import signal
import statistics
import time

import grpc
import pytest
from PIL import Image

from protos import seedbench_pb2 as pb
from protos import seedbench_pb2_grpc as pb_grpc
from protos.wire import ERROR_SOURCE_KEY, ERROR_SOURCE_QUEUE
from serving.processes import health
from tests.images import png, sha
from tests.procs import metrics_port, model_server
from tests.stepped_clock import TickingClock
from tests.test_metrics import scrape, value
from tests.tiny_models import tiny_model
from tests.waiting import in_background, wait_until

INVALID = grpc.StatusCode.INVALID_ARGUMENT
EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED
IMAGE = png(1)
BIG_ID = "q" * 1_000_000  # a 1 MB request id (within the 1 MiB message limit)


def prompt(text="What is shown?", images=(IMAGE,)):
    return pb.Prompt(text=text, images=[pb.Image(data=d) for d in images])


def score(text="What is shown?", images=(IMAGE,), options=("a", "b"), rid="q1"):
    return pb.ScoreRequest(request_id=rid, options=list(options), prompt=prompt(text, images))


def generate(max_new_tokens=4, text="Say a letter.", images=(), rid="g1"):
    return pb.GenerateRequest(request_id=rid, prompt=prompt(text, images),
                              max_new_tokens=max_new_tokens)


def generate_image(max_new_tokens=0, text="Draw a square.", images=(), rid="i1"):
    return pb.GenerateImageRequest(request_id=rid, prompt=prompt(text, images),
                                   max_new_tokens=max_new_tokens)


def with_hash(req, digest):
    req.prompt.images[0].sha256 = digest
    return req


def png_of(mode: str, size: tuple[int, int]) -> bytes:
    """A small file that decodes to a huge image (a 1-bit fill compresses ~1000:1)."""
    buf = io.BytesIO()
    Image.new(mode, size).save(buf, format="PNG")
    return buf.getvalue()


def raw_bytes(data: bytes):
    """Raw request bytes for a method: what a broken or foreign client might send."""
    return data


# A ScoreRequest whose request_id (field 1) is not UTF-8: protobuf refuses to decode it.
BAD_UTF8 = b"\x0a\x02\xff\xfe"

# (id, method, request or raw bytes, status code, words the message must contain)
CORPUS = [
    ("score-empty-text", "Score", score(text=""), INVALID, ["prompt.text", "empty"]),
    ("score-blank-text", "Score", score(text=" \n\t"), INVALID, ["prompt.text", "empty"]),
    ("score-no-options", "Score", score(options=()), INVALID, ["options", "empty"]),
    ("score-blank-option", "Score", score(options=("a", " ")), INVALID, ["options[1]"]),
    ("score-65-options", "Score", score(options=[f"o{i}" for i in range(65)]), EXHAUSTED,
     ["options", "65", "64"]),
    ("score-3-images", "Score", score(images=(IMAGE, IMAGE, IMAGE)), EXHAUSTED,
     ["prompt.images", "3 images", "at most 2"]),
    ("score-placeholder-mismatch", "Score", score(text="<img> and <img> and <img>",
                                                   images=(IMAGE, IMAGE)),
     INVALID, ["prompt.text", "3 <img> placeholders", "2 images"]),
    ("score-empty-image", "Score", score(images=(b"",)), INVALID, ["prompt.images[0].data"]),
    ("score-hash-mismatch", "Score", with_hash(score(), sha(b"other")), INVALID,
     ["prompt.images[0].sha256"]),
    ("score-hash-not-hex", "Score", with_hash(score(), "zz"), INVALID,
     ["prompt.images[0].sha256"]),
    ("score-not-an-image", "Score", score(images=(b"plain text",)), INVALID,
     ["prompt.images[0]", "cannot be decoded"]),
    ("score-image-over-message-limit", "Score", score(images=(b"\x89PNG" + bytes(2 << 20),)),
     EXHAUSTED, ["larger than max"]),
    ("score-1mb-request-id", "Score", score(options=(), rid=BIG_ID), INVALID,
     ["options", "characters"]),
    ("score-bad-protobuf", "Score", raw_bytes(b"\xff\xff\xff\xff"), INVALID,
     ["ModelService/Score", "not a valid request message"]),
    ("score-bad-utf8-id", "Score", raw_bytes(BAD_UTF8), INVALID,
     ["not a valid request message"]),
    ("generate-negative-tokens", "Generate", generate(-1), INVALID, ["max_new_tokens", "-1"]),
    ("generate-min-int-tokens", "Generate", generate(-(2**31)), INVALID,
     ["max_new_tokens", str(-(2**31))]),
    ("generate-over-cap", "Generate", generate(65), EXHAUSTED, ["max_new_tokens", "65", "64"]),
    ("generate-max-int-tokens", "Generate", generate(2**31 - 1), EXHAUSTED,
     ["max_new_tokens", str(2**31 - 1), "64"]),
    ("generate-empty-text", "Generate", generate(text=""), INVALID, ["prompt.text"]),
    ("generate-3-images", "Generate", generate(images=(IMAGE, IMAGE, IMAGE)), EXHAUSTED,
     ["prompt.images", "at most 2"]),
    ("generate-not-an-image", "Generate", generate(images=(b"GIF89a broken",)), INVALID,
     ["prompt.images[0]", "cannot be decoded"]),
    ("generate-1mb-request-id", "Generate", generate(-3, rid=BIG_ID), INVALID,
     ["max_new_tokens", "characters"]),
    ("generate-bad-protobuf", "Generate", raw_bytes(b"\x18\xff"), INVALID,
     ["ModelService/Generate", "not a valid request message"]),
    ("image-negative-tokens", "GenerateImage", generate_image(-5), INVALID,
     ["max_new_tokens", "-5"]),
    ("image-over-cap", "GenerateImage", generate_image(10**6), EXHAUSTED,
     ["max_new_tokens", "1000000"]),
    ("image-truncated-png", "GenerateImage", generate_image(images=(IMAGE[:60],)), INVALID,
     ["prompt.images[0]", "cannot be decoded"]),
    ("image-81m-pixels", "GenerateImage", generate_image(images=(png_of("1", (9000, 9000)),)),
     EXHAUSTED, ["prompt.images[0]", "pixels"]),
    ("image-144m-pixels", "GenerateImage",
     generate_image(images=(png_of("1", (12000, 12000)),)), EXHAUSTED,
     ["prompt.images[0]", "pixels"]),
    ("image-400m-pixels", "GenerateImage",
     generate_image(images=(png_of("1", (20000, 20000)),)), EXHAUSTED,
     ["prompt.images[0]", "pixels"]),
    ("image-bad-protobuf", "GenerateImage", raw_bytes(b"\x0a\x05ab"), INVALID,
     ["ModelService/GenerateImage", "not a valid request message"]),
    ("info-bad-protobuf", "Info", raw_bytes(b"\x07"), INVALID,
     ["ModelService/Info", "not a valid request message"]),
]

RESPONSES = {"Score": pb.ScoreResponse, "Generate": pb.GenerateResponse,
             "GenerateImage": pb.GenerateImageResponse, "Info": pb.InfoResponse}


def call(channel, method: str, req, timeout=30):
    """Send a message or raw bytes to ModelService/<method>."""
    serialize = (lambda b: b) if isinstance(req, bytes) else (lambda m: m.SerializeToString())
    rpc = channel.unary_unary(f"/seedbench.v1.ModelService/{method}",
                              request_serializer=serialize,
                              response_deserializer=RESPONSES[method].FromString)
    return rpc(req, timeout=timeout)


def timed_good_score(channel) -> float:
    t0 = time.perf_counter()
    assert call(channel, "Score", score(rid="good")).scores
    return time.perf_counter() - t0


@pytest.fixture(scope="module")
def synthetic():
    args = ["--backend", "synthetic", "--model", "bad-requests", "--max-message-mb", "1",
            "--max-new-tokens", "64", "--backend-arg", "max_images=2"]
    with model_server(args) as (target, _):
        with grpc.insecure_channel(target,
                                   options=[("grpc.max_send_message_length", 16 << 20)]) as ch:
            baseline = statistics.median(timed_good_score(ch) for _ in range(5))
            yield ch, baseline


def test_corpus_is_large_enough():
    assert len(CORPUS) >= 30
    assert len({case[0] for case in CORPUS}) == len(CORPUS)


@pytest.mark.parametrize("case", CORPUS, ids=[c[0] for c in CORPUS])
def test_bad_request(synthetic, case):
    channel, baseline = synthetic
    _, method, req, code, needles = case
    with pytest.raises(grpc.RpcError) as err:
        call(channel, method, req)
    details = err.value.details() or ""
    assert err.value.code() == code, details
    for needle in needles:
        assert needle in details, (needle, details[:500])
    assert len(details) < 3000  # a huge request id is clipped, never echoed whole
    assert "Traceback" not in details
    # The server still answers good requests, at its normal latency.
    assert timed_good_score(channel) < max(2.0, 20 * baseline)


def test_good_requests_at_the_limits_are_answered(synthetic):
    channel, _ = synthetic
    assert len(call(channel, "Score", score(options=[f"o{i}" for i in range(64)])).scores) == 64
    assert call(channel, "Generate", generate(64)).text
    assert call(channel, "Generate", generate(0)).text  # 0: the server's default
    assert call(channel, "GenerateImage", generate_image(64, images=(IMAGE,))).image.data


# ------------------------------------------------------- admission against a real model

@pytest.fixture(scope="module")
def tiny_hf(tmp_path_factory):
    path = tiny_model("llava", tmp_path_factory.getbasetemp())
    args = ["--backend", "hf", "--model", str(path), "--device", "cpu", "--max-batch", "4",
            "--max-new-tokens", "100000", "--backend-arg", "max_option_tokens=300"]
    with model_server(args, timeout=300) as (target, _):
        with grpc.insecure_channel(target, options=[("grpc.max_send_message_length",
                                                     16 << 20)]) as ch:
            stub = pb_grpc.ModelServiceStub(ch)
            context = int(stub.Info(pb.InfoRequest(), timeout=30).details["context_tokens"])
            yield stub, context


def _good_hf(stub) -> float:
    t0 = time.perf_counter()
    assert len(stub.Score(score(text="<img> What colour?", options=("red", "blue")),
                          timeout=120).scores) == 2
    return time.perf_counter() - t0


def _refused(stub, method: str, req, *needles: str) -> str:
    t0 = time.perf_counter()
    with pytest.raises(grpc.RpcError) as err:
        getattr(stub, method)(req, timeout=120)
    assert err.value.code() == EXHAUSTED, err.value.details()
    for needle in needles:
        assert needle in err.value.details(), err.value.details()
    assert time.perf_counter() - t0 < 30  # refused up front, not after computing
    return err.value.details()


def test_prompt_over_the_context_is_refused_at_admission(tiny_hf):
    stub, context = tiny_hf
    before = _good_hf(stub)
    long_text = "<img> " + "w " * (2 * context) + "What colour?"  # short words: tokenised
    details = _refused(stub, "Score", score(text=long_text), "prompt.text",
                       "context length", str(context))
    assert "images expanded" in details
    raw = score(text=long_text)
    raw.raw_prompt = True  # no chat template: counted as sent
    _refused(stub, "Score", raw, "prompt.text", "context length", str(context))
    after = _good_hf(stub)
    assert after < max(5.0, 5 * before)


def test_a_huge_prompt_is_refused_without_tokenising_it(tiny_hf):
    stub, context = tiny_hf
    huge = "<img> " + "x" * (5 << 20)  # 5 MB of text
    details = _refused(stub, "Score", score(text=huge), "prompt.text", "characters is at least",
                       f"context length of {context}")
    assert str(len(huge)) in details
    _good_hf(stub)


def test_generation_longer_than_the_context_is_refused(tiny_hf):
    stub, context = tiny_hf
    _refused(stub, "Generate", generate(context, text="Hello"), "max_new_tokens",
             f"context length of {context}")
    assert stub.Generate(generate(3, text="Hello"), timeout=120).text is not None


def test_options_over_the_token_budget_are_refused(tiny_hf):
    stub, _ = tiny_hf
    options = [" ".join(["answer"] * 20) + f" {i}" for i in range(40)]
    _refused(stub, "Score", score(text="<img> Which?", options=options), "options",
             "40 options", "max_option_tokens", "300")
    _good_hf(stub)


# ------------------------------------------------- deadlines, backpressure, stuck health

RELEASE = "release.flag"  # created by a test to end the scripted device's hold


@pytest.fixture()
def scripted(tmp_path):
    def serve(*extra: str, delay_s: float = 3.0, hold: bool = False):
        """A scripted server whose device sleeps `delay_s` on "slow question", or with
        `hold`, works on it until the test creates tmp_path / RELEASE."""
        script = tmp_path / "slow.json"
        rule = {"hold_until": {"slow question": RELEASE}} if hold else \
            {"delay_s": {"slow question": delay_s}}
        script.write_text(json.dumps({"name": "slow", "log": "calls.jsonl", **rule}))
        return model_server(["--backend", "scripted", "--model", str(script),
                             "--max-wait-ms", "0", *extra]), tmp_path / "calls.jsonl"
    return serve


def _calls(log) -> list[str]:
    if not log.exists():
        return []
    return [json.loads(line)["request_id"] for line in log.read_text().splitlines()]


def test_request_past_its_deadline_is_not_run(scripted, tmp_path):
    server, log = scripted(hold=True)  # the device holds "slow" until the test releases it
    with server as (target, _), grpc.insecure_channel(target) as ch:
        stub = pb_grpc.ModelServiceStub(ch)
        slow, slow_out = in_background(stub.Score, score(text="slow question", rid="slow"))
        wait_until(lambda: "slow" in _calls(log), what="the slow call on the device")
        with pytest.raises(grpc.RpcError) as err:
            stub.Score(score(text="quick one", rid="late-score"), timeout=0.5)
        assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        with pytest.raises(grpc.RpcError) as err:
            stub.GenerateImage(generate_image(text="quick one", rid="late-image"), timeout=0.5)
        assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        (tmp_path / RELEASE).touch()
        slow.join(30)
        assert "result" in slow_out
        assert stub.Score(score(rid="after"), timeout=30).scores
        assert stub.GenerateImage(generate_image(rid="after-image"), timeout=30).image.data
        calls = _calls(log)
        assert "late-score" not in calls and "late-image" not in calls  # never reached the backend
        assert calls.count("slow") == 1 and "after" in calls and "after-image" in calls


def test_queue_full_is_refused_at_once(tmp_path):
    """One call held on the device (until the test releases it), two waiting in the queue
    (polled from /metrics), and the fourth refused while the three still wait: the refusal
    cannot have waited for the queue. The same for image generation."""
    script = tmp_path / "held.json"
    script.write_text(json.dumps({"name": "held", "log": "calls.jsonl", "hold_until": {
        "held score": "go-score.flag", "held image": "go-image.flag"}}))
    log = tmp_path / "calls.jsonl"
    args = ["--backend", "scripted", "--model", str(script), "--max-wait-ms", "0",
            "--max-batch", "1", "--max-queue", "2", "--metrics-port", "0"]
    with model_server(args) as (target, proc), grpc.insecure_channel(target) as ch:
        stub = pb_grpc.ModelServiceStub(ch)
        port = metrics_port(proc)
        for method, make, kind, batcher in (
                (stub.Score, lambda rid, text: score(text=text, rid=rid), "score", "score"),
                (stub.GenerateImage, lambda rid, text: generate_image(text=text, rid=rid), "image",
                 "generate_image")):
            # One on the device, then two in the batch queue.
            calls = [in_background(method, make(f"{kind}0", f"held {kind}"), 60)]
            wait_until(lambda k=kind: f"{k}0" in _calls(log), timeout=30,
                       what=f"a held {kind} call on the device")
            calls += [in_background(method, make(f"{kind}{i}", f"held {kind}"), 60)
                      for i in (1, 2)]
            wait_until(lambda b=batcher: value(scrape(port), "seedbench_queue_depth", 0.0,
                                               batcher=b) == 2, timeout=30,
                       what=f"two {kind} calls queued")
            with pytest.raises(grpc.RpcError) as err:
                method(make(f"{kind}-too-many", "quick one"), timeout=30)
            assert err.value.code() == EXHAUSTED
            assert "queue full" in err.value.details() and "max_queue 2" in err.value.details()
            assert (ERROR_SOURCE_KEY, ERROR_SOURCE_QUEUE) in err.value.trailing_metadata()
            assert not any(out for _, out in calls)  # refused while all three still waited
            (tmp_path / f"go-{kind}.flag").touch()
            for t, out in calls:
                t.join(60)
                assert "result" in out, out
        assert "score-too-many" not in _calls(log) and "image-too-many" not in _calls(log)


def test_the_evaluator_retries_queue_full_but_not_other_limits():
    from evaluator.run.client import worth_retrying

    def error(code, metadata=()):
        return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(*metadata),
                                    "details")

    assert worth_retrying(error(EXHAUSTED, [(ERROR_SOURCE_KEY, ERROR_SOURCE_QUEUE)]))
    assert not worth_retrying(error(EXHAUSTED))  # over a limit: fails the same way again
    assert not worth_retrying(error(INVALID, [(ERROR_SOURCE_KEY, ERROR_SOURCE_QUEUE)]))
    assert worth_retrying(error(grpc.StatusCode.UNAVAILABLE))


def test_an_evaluator_run_rides_through_queue_full_with_no_errors(tmp_path):
    """Many calls in flight against a queue of one: refused at once, retried, all answered."""
    import subprocess
    import sys

    from serving.processes import child_env, free_port
    from tests.evaluator_runs import run_argv as run_args
    from tests.evaluator_runs import write_sample
    from tests.test_metrics import scrape, value

    ann, roots = write_sample(tmp_path / "data", per_dim=1)
    port = free_port()
    args = ["--backend", "synthetic", "--model", "busy", "--max-batch", "1", "--max-queue", "1",
            "--max-wait-ms", "0", "--backend-arg", "latency_ms=30", "--metrics-port", str(port),
            "--log-level", "WARNING"]
    out = tmp_path / "out"
    with model_server(args) as (target, _):
        r = subprocess.run([sys.executable, "-m", "evaluator.cli",
                            *run_args(ann, roots, target, out, "--in-flight", "8",
                                      "--retries", "30")],
                           env=child_env(), capture_output=True, text=True, timeout=300)
        refused = value(scrape(port), "seedbench_requests_total", service="ModelService",
                        method="Score", code="RESOURCE_EXHAUSTED")
    assert r.returncode == 0, r.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["counts"]["errors"] == 0 and summary["counts"]["answered"] > 8, summary["counts"]
    assert refused > 0  # the queue really was full, and those calls were retried


def test_health_not_serving_while_the_device_is_stuck(scripted, tmp_path):
    server, log = scripted("--stuck-after-s", "1", hold=True)
    with server as (target, _), grpc.insecure_channel(target) as ch:
        stub = pb_grpc.ModelServiceStub(ch)
        assert health(target) == "SERVING"
        slow, out = in_background(stub.Score, score(text="slow question", rid="stuck"))
        wait_until(lambda: health(target) == "NOT_SERVING", what="health NOT_SERVING")
        assert "result" not in out  # still on the device: that is what health saw
        (tmp_path / RELEASE).touch()
        slow.join(30)
        assert "result" in out
        wait_until(lambda: health(target) == "SERVING", what="health SERVING again")


# ------------------------------------------------------------------ shutdown while busy

def test_sigterm_while_busy_exits_within_the_grace_period(scripted):
    server, log = scripted("--grace-s", "2", delay_s=120.0)
    with server as (target, proc), grpc.insecure_channel(target) as ch:
        stub = pb_grpc.ModelServiceStub(ch)
        busy, out = in_background(stub.Score, score(text="slow question", rid="busy"))
        wait_until(lambda: "busy" in _calls(log), what="the busy call on the device")
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(30)
        elapsed = time.monotonic() - t0
        busy.join(30)
        server_log = open(proc.log).read()
    assert code == 3  # the grace ran out with work still on the device
    assert 1.5 < elapsed < 10, elapsed
    assert out["error"].code() in (grpc.StatusCode.CANCELLED, grpc.StatusCode.UNAVAILABLE)
    assert "grace of 2s ran out" in server_log and "exit 3" in server_log


def test_second_sigterm_exits_at_once(scripted):
    server, log = scripted("--grace-s", "120", delay_s=120.0)
    with server as (target, proc), grpc.insecure_channel(target) as ch:
        stub = pb_grpc.ModelServiceStub(ch)
        busy, _ = in_background(stub.Score, score(text="slow question", rid="busy"))
        wait_until(lambda: "busy" in _calls(log), what="the busy call on the device")
        proc.send_signal(signal.SIGTERM)
        wait_until(lambda: "draining" in open(proc.log).read(), what="the first SIGTERM seen")
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(30)
        assert time.monotonic() - t0 < 5
        busy.join(30)
        assert "second SIGTERM" in open(proc.log).read()
    assert code == 4


def test_sigterm_when_idle_exits_zero(scripted):
    server, _ = scripted("--grace-s", "5")
    with server as (target, proc), grpc.insecure_channel(target) as ch:
        assert pb_grpc.ModelServiceStub(ch).Score(score(rid="quick"), timeout=30).scores
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        assert time.monotonic() - t0 < 5


def test_a_long_generation_stops_at_the_client_deadline_over_grpc(tmp_path_factory):
    """A real server (hf backend, the tiny "deep" LLaVA: ~10 ms a token or more on a CPU,
    never ending on its own): a Generate of 4,000 tokens whose client gives up after 1 s
    frees the device at that deadline, so the next request is answered at once rather
    than after the minute the full generation would take."""
    model = tiny_model("llava", tmp_path_factory.getbasetemp(), preset="deep")
    args = ["--backend", "hf", "--model", str(model), "--device", "cpu",
            "--max-new-tokens", "4000", "--log-level", "WARNING"]
    with model_server(args) as (target, _), grpc.insecure_channel(target) as ch:
        stub = pb_grpc.ModelServiceStub(ch)
        t0 = time.perf_counter()
        assert stub.Generate(generate(20, text="Hello"), timeout=120).text  # no deadline
        per_token = (time.perf_counter() - t0) / 20  # an upper bound: the prefill is in it
        full_s = 4000 * per_token  # what the long generation would hold the device for
        t0 = time.perf_counter()
        with pytest.raises(grpc.RpcError) as err:
            stub.Generate(generate(4000, text="Hello", rid="long"), timeout=1.0)
        assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        t1 = time.perf_counter()
        assert stub.Generate(generate(4, text="Hello", rid="next"), timeout=120).text
        answered_s = time.perf_counter() - t1
        assert health(target) == "SERVING"
    assert t1 - t0 < 3.0  # the client's own deadline
    # The next request waited for at most the token in progress, not for 4,000 tokens.
    assert answered_s < min(5.0, full_s / 5), (answered_s, full_s)


def _text_generation_is_cut_at_the_deadline(backend, tokenizer, max_new_tokens, monkeypatch):
    """The backend's text generation, free and then with a deadline of 5.5 on a stepped clock:
    one look before generating, then one per token, so the 6th look (5th token) is past it and
    the cut reply is refused, not returned as if it were the answer. Returns the clock."""
    from model_server.backends import deadline_stop
    from model_server.backends.base import GenerateTask
    from serving.errors import DeadlinePassed

    free = backend.generate(GenerateTask(request_id="d", text="Hello", images=(),
                                         max_new_tokens=max_new_tokens))
    free_tokens = tokenizer(free, add_special_tokens=False)["input_ids"]
    clock = TickingClock()
    monkeypatch.setattr(deadline_stop, "time", clock)
    with pytest.raises(DeadlinePassed, match="during generation; stopped after 5 tokens"):
        backend.generate(GenerateTask(request_id="d", text="Hello", images=(),
                                      max_new_tokens=max_new_tokens, deadline=5.5))
    assert len(free_tokens) >= 20 and clock.now == 6.0, (len(free_tokens), clock.now)
    with pytest.raises(DeadlinePassed, match="before generation began"):
        backend.generate(GenerateTask(request_id="d", text="Hello", images=(), deadline=1.0))
    return clock


def test_hf_generation_stops_at_the_deadline(tmp_path_factory, monkeypatch):
    """In process: exactly where generation stops (over gRPC:
    test_a_long_generation_stops_at_the_client_deadline_over_grpc)."""
    from model_server.backends import hf
    from model_server.backends.local_settings import HFSettings

    backend = hf.HFBackend(str(tiny_model("llava", tmp_path_factory.getbasetemp())),
                           HFSettings(device="cpu"))
    _text_generation_is_cut_at_the_deadline(backend, backend.inputs.tokenizer, 50, monkeypatch)


def test_janus_generation_stops_at_the_deadline(tmp_path_factory, monkeypatch):
    """In process: text stops at the deadline and the cut reply is refused; an image (a fixed
    number of tokens) is aborted at once."""
    from model_server.backends import janus
    from model_server.backends.base import GenerateImageTask
    from model_server.backends.local_settings import JanusSettings
    from serving.errors import DeadlinePassed

    backend = janus.JanusBackend(str(tiny_model("janus", tmp_path_factory.getbasetemp())),
                                 JanusSettings(device="cpu"))
    clock = _text_generation_is_cut_at_the_deadline(backend, backend.tokenizer, 40, monkeypatch)
    clock.now = 0.0
    with pytest.raises(DeadlinePassed, match="while the image was generated"):
        backend.generate_image(GenerateImageTask(request_id="i", text="a cat", images=(),
                                                 deadline=5.5))
    assert clock.now < 16  # aborted a few tokens in, not after the image's 16 tokens
