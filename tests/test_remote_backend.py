"""Remote backends in process: span and letter arithmetic, concurrency, retries, error mapping."""

from __future__ import annotations

import io
import logging
import math

import pytest
from PIL import Image

from model_server import backends
from model_server.backends import remote_client
from model_server.backends.base import GenerateImageTask, GenerateTask, ScoreTask, unmeter
from model_server.backends.remote import OpenAIBackend, VLLMBackend, to_png
from model_server.backends.remote_client import (
    PermissionDenied,
    Redactor,
    RemoteClient,
    api_message,
)
from model_server.backends.remote_scoring import letter_logprobs, option_span
from serving.errors import InvalidRequest, NotSupported, TooLarge, UpstreamError
from tests.procs import refusing_port
from tests.stepped_clock import SteppedClock
from tests.test_remote_api import fake_token_logprob

KEY = "sk-unit-secret"


@pytest.fixture(autouse=True)
def _clean(request, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    if "api" in request.fixturenames:
        request.getfixturevalue("api").reset()


def make(api, **kw) -> OpenAIBackend:
    kw = {"base_url": api.url, "max_retries": "2", "backoff_s": "0.01", "timeout_s": "10", **kw}
    return backends.create("openai", "fake-model", **kw)


def stask(text="What color is it?", options=("red", "green"), images=(), eot=False):
    return ScoreTask("q", text, list(images), list(options), eot)


def raise_errors(results: list) -> list:
    """score() returns a failed task's error in its place; raise the first one."""
    for r in results:
        if isinstance(r, Exception):
            raise r
    return results


def img(color=(10, 20, 30)) -> Image.Image:
    return Image.new("RGB", (8, 8), color)


# -- pure arithmetic ------------------------------------------------------------------------------

def test_option_span_counts_merged_boundary_token_and_skips_generated():
    # "Answer:" + "B" tokenised as ["Answer:B"] after a first token; then one generated token.
    context, full = "Q? Answer:", "Q? Answer:B"
    offsets, lps = [0, 2, len(full)], [None, -1.3, -0.01]
    s = option_span(offsets, lps, len(context), len(full))
    assert (s.logprob_sum, s.num_tokens) == (-1.3, 1)


def test_option_span_ignores_empty_leading_tokens():
    # A BOS token at offset 0 with no text, as some servers echo it.
    # Tokens: <s> [0,0), "Q" [0,1), " A" [1,3); context "Q", option " A".
    s = option_span([0, 0, 1], [None, -0.1, -0.5], 1, len("Q A"))
    assert (s.logprob_sum, s.num_tokens) == (-0.5, 1)


def test_option_span_refuses_option_at_first_token():
    with pytest.raises(InvalidRequest, match="first token"):
        option_span([0], [None], 0, 3)


def test_letter_variants_add_and_absent_letters_floor():
    top = [{"token": "(B", "logprob": -1.0}, {"token": "B.", "logprob": -2.0},
           {"token": "A", "logprob": -0.5}, {"token": "x", "logprob": -6.0}]
    values, floored = letter_logprobs(top, ["A", "B", "C", "D"], 20)
    assert values[0] == -0.5
    assert values[1] == pytest.approx(math.log(math.exp(-1.0) + math.exp(-2.0)))
    assert values[2] == values[3] == pytest.approx(-6.0 - math.log(20))
    assert floored == 2


def test_api_message_shapes():
    assert api_message({"error": {"message": "bad model"}}) == "bad model"
    assert api_message({"object": "error", "message": "too long"}) == "too long"
    assert api_message(None, "plain failure") == "plain failure"


def test_to_png_converts():
    buf = io.BytesIO()
    Image.new("RGB", (5, 4), (1, 2, 3)).save(buf, format="JPEG")
    out = to_png(buf.getvalue())
    assert out.startswith(b"\x89PNG") and Image.open(io.BytesIO(out)).size == (5, 4)
    with pytest.raises(UpstreamError):  # a malformed answer, not "loading"
        to_png(b"junk")


# -- settings -------------------------------------------------------------------------------------

def test_registry_keys_and_defaults(monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", "http://example.invalid:9/v1")
    b = backends.create("openai", model="m")
    assert b.base_url == "http://example.invalid:9/v1" and b.score_mode == "chat-letter"
    v = backends.create("vllm", model="m")
    assert isinstance(v, VLLMBackend)
    assert v.base_url == "http://127.0.0.1:8000/v1" and v.score_mode == "completions-echo"
    assert v.settings.echo_max_tokens == 1 and v.info().backend == "vllm"


def test_bad_settings_fail_at_start():
    with pytest.raises(ValueError, match="score_mde"):
        backends.create("openai", "m", score_mde="chat-letter")
    with pytest.raises(ValueError, match="score_mode"):
        backends.create("openai", "m", score_mode="logits")
    with pytest.raises(ValueError, match="capabilities"):
        backends.create("openai", "m", capabilities="score,video")


def test_fingerprint_tracks_scoring_settings(api):
    a = make(api).info().fingerprint
    assert make(api).info().fingerprint == a
    assert make(api, score_mode="completions-echo").info().fingerprint != a
    assert make(api, revision="2025-01").info().fingerprint != a
    assert make(api, base_url=api.url.replace("127.0.0.1", "localhost")).info().fingerprint != a


def test_key_never_in_repr_or_info(api):
    b = make(api)
    assert KEY not in repr(b.client) and KEY not in str(b.info())


# -- HTTP behaviour -------------------------------------------------------------------------------

def test_score_batch_runs_concurrently_within_bound(api):
    b = make(api, score_mode="completions-echo", concurrency="3")
    b.score([stask(options="a")])  # the client's one-off set-up stays out of the timing
    api.reset()
    api.delay_s = 0.2
    tasks = [stask(options="abcd"), stask(text="Other?", options="abcd")]
    out = [unmeter(r)[0] for r in b.score(tasks)]
    assert api.max_in_flight == 3 and len(api.requests) == 8  # concurrent, and never above 3
    assert [s.num_tokens for row in out for s in row] == [1] * 8
    assert out[0][0].logprob_sum == pytest.approx(fake_token_logprob(" a"))


CHAT_BODY = {"model": "m", "messages": [{"role": "user", "content": [{"type": "text",
                                                                        "text": "Hi"}]}]}


def post(client: RemoteClient, path: str, body: dict) -> dict:
    return client.run(client.call(path, body, client.budget()))


@pytest.mark.parametrize("status,header,wait", [(429, {"Retry-After": "1"}, 1.0),
                                                (503, {"retry-after-ms": "300"}, 0.3)])
def test_retry_after_is_honoured(api, monkeypatch, status, header, wait):
    clock = SteppedClock().install(monkeypatch, remote_client)
    api.script = [(status, {"error": {"message": "slow down"}}, header)]
    post(RemoteClient(api.url, "", "test", max_retries=1, backoff_s=0.0), "chat/completions",
         CHAT_BODY)
    assert clock.sleeps == [wait] and len(api.requests) == 2  # without it: a 0 s backoff


@pytest.mark.parametrize("status,exc", [(413, TooLarge), (404, NotSupported), (400, InvalidRequest),
                                        (403, PermissionDenied), (422, InvalidRequest)])
def test_status_mapping(api, status, exc):
    api.script = [(status, {"error": {"message": "said the API"}}, {})]
    with pytest.raises(exc, match="said the API"):
        make(api).generate(GenerateTask("g", "Hi?", []))
    assert len(api.requests) == 1


def test_connection_refused_is_an_upstream_error():
    with refusing_port() as port:
        b = backends.create("openai", "m", base_url=f"http://127.0.0.1:{port}/v1",
                            max_retries="1", backoff_s="0.01")
        with pytest.raises(UpstreamError, match=r"unreachable after 2 attempt\(s\)"):
            b.generate(GenerateTask("g", "Hi?", []))


def test_no_key_sends_no_authorization(api, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY")
    make(api).generate(GenerateTask("g", "Hi?", []))
    assert "Authorization" not in api.requests[0][1]


# -- capability and request checks ----------------------------------------------------------------

def test_undeclared_capability_is_unimplemented(api):
    with pytest.raises(NotSupported, match="capabilities=generate,score"):
        make(api).generate_image(GenerateImageTask("i", "a cat", []))
    with pytest.raises(NotSupported):
        make(api, capabilities="generate").score([stask(options="AB")])
    assert not make(api, capabilities="generate").info().can_score


def test_end_of_turn_refused(api):
    with pytest.raises(InvalidRequest, match="include_end_of_turn"):
        raise_errors(make(api).score([stask(options="AB", eot=True)]))


def test_text_only_drops_images_and_placeholders(api):
    b = make(api, score_mode="completions-echo", text_only="true")
    b.score([stask(text="<img> What is it?", options=("cat",), images=[img()])])
    (body,) = api.calls("/v1/completions")
    assert body["prompt"] == " What is it?\nAnswer: cat" and body["max_tokens"] == 0
    assert b.info().details["images"] == "dropped (text only)"


def test_image_detail_and_jpeg(api):
    make(api, image_detail="low", image_format="jpeg").generate(GenerateTask("g", "Hi?", [img()]))
    part = api.calls("/v1/chat/completions")[0]["messages"][0]["content"][0]["image_url"]
    assert part["detail"] == "low" and part["url"].startswith("data:image/jpeg;base64,")


def test_generate_image_with_text(api):
    b = make(api, capabilities="generate,generate_image", image_model="painter",
             image_size="256x256")
    out, usage = unmeter(b.generate_image(GenerateImageTask("i", "a cat", [img()], with_text=True)))
    assert out.png.startswith(b"\x89PNG") and out.text.startswith("parts=image,text")
    (body,) = api.calls("/v1/images/generations")
    assert body["model"] == "painter" and body["size"] == "256x256"
    assert usage.requests == 2  # the images endpoint, then the chat endpoint


# -- secrets --------------------------------------------------------------------------------------

def test_redactor_removes_the_key_and_token_shapes():
    redact = Redactor(["my-own-key-1234"])
    text = redact("key my-own-key-1234, header 'Authorization: Bearer abcdefgh12345', sk-other12345678")
    assert "my-own-key-1234" not in text and "abcdefgh12345" not in text
    assert "sk-other12345678" not in text and text.count("[redacted]") == 3


def test_every_log_line_of_the_process_is_redacted(api, caplog):
    make(api)  # a remote backend installs the redaction on the process's log handlers
    logging.getLogger("some.other.library").warning("sent %s upstream", KEY)
    try:
        raise RuntimeError(f"failed with {KEY}")
    except RuntimeError:
        logging.getLogger("x").exception("boom")
    assert "sent [redacted] upstream" in caplog.text and KEY not in caplog.text


# -- start-up check -------------------------------------------------------------------------------

def test_unreachable_api_stops_the_start_in_one_line():
    with refusing_port() as port, \
            pytest.raises(ValueError, match=r"^cannot reach http://127\.0\.0\.1:\d+/v1 \("):
        backends.create("openai", "m", base_url=f"http://127.0.0.1:{port}/v1").check()


def test_refused_key_stops_the_start_without_showing_it(api):
    api.models_status = 401
    with pytest.raises(ValueError, match="refused the API key from the environment variable "
                                         "OPENAI_API_KEY") as err:
        make(api).check()
    assert KEY not in str(err.value)


def test_a_question_stops_retrying_when_its_time_budget_is_spent(api, monkeypatch):
    """Retries never outlast question_timeout_s, so the evaluator's deadline is not hit: a
    10 s budget takes one 6 s wait, not a second one (HTTP time is not counted here)."""
    clock = SteppedClock().install(monkeypatch, remote_client)
    api.script = [(503, {"error": {"message": "busy"}}, {"Retry-After": "6"})] * 5
    b = make(api, max_retries="10", question_timeout_s="10")
    with pytest.raises(UpstreamError, match=r"HTTP 503 after 2 attempt\(s\)"):
        raise_errors(b.score([stask(options="AB")]))
    assert clock.sleeps == [6.0] and len(api.requests) == 2
