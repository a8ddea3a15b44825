"""Bad requests get clear INVALID_ARGUMENT / RESOURCE_EXHAUSTED and the server keeps serving."""

from __future__ import annotations

import grpc
import pytest

from protos import seedbench_pb2 as pb
from protos import seedbench_pb2_grpc as pb_grpc
from tests.images import png, sha
from tests.procs import model_server


@pytest.fixture(scope="module")
def stub():
    args = ["--backend", "synthetic", "--model", "errors", "--max-message-mb", "1",
            "--backend-arg", "max_images=2"]
    with model_server(args) as (target, _):
        with grpc.insecure_channel(target, options=[("grpc.max_send_message_length", 8 << 20)]) as ch:
            yield pb_grpc.ModelServiceStub(ch)


IMAGE = png(1)


def score(text="What is it?", images=(IMAGE,), options=("a", "b"), rid="q1"):
    return pb.ScoreRequest(request_id=rid, options=list(options),
                           prompt=pb.Prompt(text=text, images=[pb.Image(data=d) for d in images]))


def expect(stub, req, code, *needles):
    with pytest.raises(grpc.RpcError) as err:
        stub.Score(req, timeout=10)
    assert err.value.code() == code, err.value.details()
    for n in needles:
        assert n in err.value.details()
    assert stub.Score(score(), timeout=10).scores  # still serving


def test_no_options(stub):
    expect(stub, score(options=()), grpc.StatusCode.INVALID_ARGUMENT, "options", "[q1]")


def test_empty_option(stub):
    expect(stub, score(options=("a", " ")), grpc.StatusCode.INVALID_ARGUMENT, "options[1]")


def test_undecodable_image(stub):
    expect(stub, score(images=(png(1), b"not an image")), grpc.StatusCode.INVALID_ARGUMENT,
           "prompt.images[1]", "cannot be decoded")


def test_image_hash_mismatch(stub):
    req = score()
    req.prompt.images[0].sha256 = sha(b"other")
    expect(stub, req, grpc.StatusCode.INVALID_ARGUMENT, "prompt.images[0].sha256")


def test_too_many_images(stub):
    expect(stub, score(images=(png(1), png(2), png(3))), grpc.StatusCode.RESOURCE_EXHAUSTED,
           "3 images", "at most 2")


def test_placeholder_count_mismatch(stub):
    expect(stub, score(text="<img> and <img>", images=(png(1),)),
           grpc.StatusCode.INVALID_ARGUMENT, "placeholders")


def test_oversized_message(stub):
    expect(stub, score(images=(b"\x89PNG" + bytes(2 << 20),)), grpc.StatusCode.RESOURCE_EXHAUSTED)


def test_empty_text(stub):
    expect(stub, score(text="   "), grpc.StatusCode.INVALID_ARGUMENT, "prompt.text", "empty")
