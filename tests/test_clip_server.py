"""The CLIP server over real gRPC, checked against open_clip run in this process."""

from __future__ import annotations

import concurrent.futures
import hashlib
import io
import os
import signal

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2
from PIL import Image

from protos import clip_pb2 as cpb
from protos import clip_pb2_grpc as cpb_grpc
from protos import seedbench_pb2 as pb
from serving.processes import health_status, wait_serving
from tests import reflection
from tests.procs import first_health, metrics_port, server_process
from tests.test_metrics import scrape, value

pytestmark = pytest.mark.slow
CONFIGS = os.path.join(os.path.dirname(__file__), "..", "clip_server", "configs")


def encode(arr: np.ndarray, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt)
    return buf.getvalue()


def noise(seed: int, h: int = 40, w: int = 48, fmt: str = "PNG") -> bytes:
    rng = np.random.default_rng(seed)
    return encode(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), fmt)


def image(data: bytes, with_sha: bool = True) -> pb.Image:
    return pb.Image(data=data, sha256=hashlib.sha256(data).hexdigest() if with_sha else "")


def vectors(resp: cpb.EmbedResponse) -> np.ndarray:
    return np.array([list(e.values) for e in resp.embeddings], dtype=np.float64)


@pytest.fixture(scope="module")
def reference():
    """The tiny model built here exactly as the spec says: config + fixed seed, no server code."""
    import open_clip
    import torch

    open_clip.add_model_config(CONFIGS)
    torch.manual_seed(0)
    model, _, preprocess = open_clip.create_model_and_transforms("seedbench-tiny-clip",
                                                                 pretrained=None)
    model.eval()
    tokenizer = open_clip.get_tokenizer("seedbench-tiny-clip")

    def embed_images(blobs):
        px = torch.stack([preprocess(Image.open(io.BytesIO(b)).convert("RGB")) for b in blobs])
        with torch.no_grad():
            return model.encode_image(px, normalize=True).double().numpy()

    def embed_texts(texts):
        with torch.no_grad():
            return model.encode_text(tokenizer(texts), normalize=True).double().numpy()

    return embed_images, embed_texts


@pytest.fixture(scope="module")
def server():
    args = ["--model", "tiny", "--max-items", "8", "--max-wait-ms", "50", "--max-batch", "16",
            "--metrics-port", "0"]
    with server_process("clip_server.cli", args) as (target, proc):
        yield target, proc


@pytest.fixture(scope="module")
def stub(server):
    with grpc.insecure_channel(server[0]) as ch:
        yield cpb_grpc.ClipServiceStub(ch)


def details(stub) -> dict[str, str]:
    """Server counters, from the trailing metadata of a (text) Embed call."""
    _, call = stub.EmbedTexts.with_call(cpb.EmbedTextsRequest(texts=["probe"]), timeout=10)
    return {k.replace("-", "_"): v for k, v in call.trailing_metadata()}


def test_info_names_the_variant(stub):
    info = stub.Info(cpb.ClipInfoRequest(), timeout=10)
    assert info.name == "tiny" and info.checkpoint == ""
    assert info.embed_dim == 32 and len(info.fingerprint) == 16
    assert info.details["cache_capacity"] == "4096"
    assert "cache_hits" not in info.details  # Info is static; counters ride on Embed calls
    assert stub.Info(cpb.ClipInfoRequest(), timeout=10) == info


def test_image_embeddings_match_open_clip(stub, reference):
    blobs = [noise(1), noise(2, 64, 20, "JPEG"), noise(3, 32, 32)]
    served = vectors(stub.EmbedImages(cpb.EmbedImagesRequest(images=[image(b) for b in blobs]),
                                      timeout=30))
    np.testing.assert_allclose(served, reference[0](blobs), atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(served, axis=1), 1.0, atol=1e-5)


def test_text_embeddings_match_open_clip(stub, reference):
    texts = ["a red cat", "two dogs playing in the snow", "x"]
    served = vectors(stub.EmbedTexts(cpb.EmbedTextsRequest(texts=texts), timeout=30))
    np.testing.assert_allclose(served, reference[1](texts), atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(served, axis=1), 1.0, atol=1e-5)


def test_ranking_picks_the_identical_image(stub):
    for trial in range(3):
        generated = noise(100 + trial)
        options = [noise(200 + trial * 4 + k) for k in range(3)]
        options.insert(trial, generated)  # the identical image at a different place each time
        g = vectors(stub.EmbedImages(cpb.EmbedImagesRequest(images=[image(generated)]), timeout=30))
        o = vectors(stub.EmbedImages(cpb.EmbedImagesRequest(images=[image(b) for b in options]),
                                     timeout=30))
        sims = o @ g[0]
        assert int(np.argmax(sims)) == trial
        assert sims[trial] == pytest.approx(1.0, abs=1e-5)


def test_cache_hits_on_repeated_image_without_sha(stub):
    blob = noise(300)
    before = details(stub)
    first = stub.EmbedImages(cpb.EmbedImagesRequest(images=[image(blob, with_sha=False)]),
                             timeout=30)
    mid = details(stub)
    second = stub.EmbedImages(cpb.EmbedImagesRequest(images=[image(blob)]), timeout=30)
    after = details(stub)
    assert int(mid["cache_misses"]) == int(before["cache_misses"]) + 1
    assert int(after["cache_hits"]) == int(mid["cache_hits"]) + 1
    assert int(after["images_embedded"]) == int(mid["images_embedded"])
    assert list(first.embeddings[0].values) == list(second.embeddings[0].values)


def test_concurrent_requests_share_batches(stub, reference):
    blobs = [noise(400 + k) for k in range(8)]
    before = details(stub)
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        futs = [pool.submit(stub.EmbedImages, cpb.EmbedImagesRequest(images=[image(b)]),
                            timeout=30) for b in blobs]
        served = np.vstack([vectors(f.result()) for f in futs])
    after = details(stub)
    items = int(after["images_embedded"]) - int(before["images_embedded"])
    batches = int(after["image_batches"]) - int(before["image_batches"])
    assert items == 8 and batches < items
    np.testing.assert_allclose(served, reference[0](blobs), atol=1e-5)


@pytest.mark.parametrize("request_fn, code, field", [
    (lambda s: s.EmbedImages(cpb.EmbedImagesRequest(images=[image(noise(1)),
                                                            image(b"not an image")])),
     grpc.StatusCode.INVALID_ARGUMENT, "images[1]"),
    (lambda s: s.EmbedImages(cpb.EmbedImagesRequest()), grpc.StatusCode.INVALID_ARGUMENT, "images"),
    (lambda s: s.EmbedImages(cpb.EmbedImagesRequest(images=[pb.Image(data=noise(1), sha256="ab")])),
     grpc.StatusCode.INVALID_ARGUMENT, "images[0].sha256"),
    (lambda s: s.EmbedTexts(cpb.EmbedTextsRequest()), grpc.StatusCode.INVALID_ARGUMENT, "texts"),
    (lambda s: s.EmbedTexts(cpb.EmbedTextsRequest(texts=["ok", " "])),
     grpc.StatusCode.INVALID_ARGUMENT, "texts[1]"),
    (lambda s: s.EmbedTexts(cpb.EmbedTextsRequest(texts=["t"] * 9)),
     grpc.StatusCode.RESOURCE_EXHAUSTED, "texts"),
])
def test_bad_input_is_refused_by_field_and_server_keeps_serving(stub, request_fn, code, field):
    with pytest.raises(grpc.RpcError) as err:
        request_fn(stub)
    assert err.value.code() == code
    assert err.value.details().startswith(field)
    ok = stub.EmbedTexts(cpb.EmbedTextsRequest(texts=["still here"]), timeout=10)
    assert len(ok.embeddings) == 1


def test_metrics_name_the_two_batchers(server, stub):
    """What the server's /metrics counts for one call of 3 texts (differences, since the server
    is shared by this module's tests)."""
    port = metrics_port(server[1])
    svc = {"service": "ClipService", "method": "EmbedTexts"}
    names = [("seedbench_requests_total", {"code": "OK", **svc}),
             ("seedbench_batch_size_sum", {"batcher": "texts"}),
             ("seedbench_batch_size_count", {"batcher": "images"})]
    before = scrape(port)
    assert len(stub.EmbedTexts(cpb.EmbedTextsRequest(texts=["a", "b", "c"]),
                               timeout=60).embeddings) == 3
    after = scrape(port)
    assert [value(after, n, 0.0, **labels) - value(before, n, 0.0, **labels)
            for n, labels in names] == [1, 3, 0]
    assert value(after, "seedbench_model_load_seconds") > 0


def test_reflection_v1_and_v1alpha_list_and_resolve_the_clip_service(server):
    for version in ("v1", "v1alpha"):
        assert reflection.services(server[0], version) == {
            "seedbench.v1.ClipService", "grpc.health.v1.Health",
            "grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"}
        files = reflection.file_containing(server[0], version, "seedbench.v1.ClipService")
        # clip.proto and the file it imports (the shared Image message)
        assert [f.name for f in files] == ["protos/clip.proto", "protos/seedbench.proto"], version
        assert reflection.service_methods(files, "seedbench.v1.ClipService") == [
            "Info", "EmbedImages", "EmbedTexts"], version


def test_health_goes_serving_and_sigterm_exits_zero():
    with server_process("clip_server.cli", ["--model", "tiny"], wait=False) as (target, proc):
        # the port opens before torch loads
        assert first_health(target) == health_pb2.HealthCheckResponse.NOT_SERVING
        wait_serving(proc, timeout_s=60)
        assert health_status(target, "seedbench.v1.ClipService") == \
            health_pb2.HealthCheckResponse.SERVING
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
