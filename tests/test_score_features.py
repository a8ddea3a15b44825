"""Capabilities are typed Info fields: what each backend offers, what a request may ask, and
refusals made from those fields alone, before any question runs."""

from __future__ import annotations

import json

import grpc
import pytest

from evaluator import cli
from evaluator.data.dataset import Question
from evaluator.results.store import Store
from evaluator.run import methods, plan, presets
from model_server.backends.base import BackendInfo
from model_server.backends.score_recipe import (
    LAST_OPTION_LENGTH,
    SQUASH,
    ScoreFeatures,
    check_supported,
    recipe_of,
)
from model_server.requests import check_score
from protos import seedbench_pb2 as pb
from protos import seedbench_pb2_grpc as pb_grpc
from protos.wire import legacy_score_features, score_features
from serving.errors import InvalidRequest
from tests.evaluator_runs import run_argv as run_args
from tests.evaluator_runs import write_sample
from tests.images import png, sha
from tests.procs import model_server
from tests.tiny_models import tiny_model

CLIP = dict(mean=[0.48145466, 0.4578275, 0.40821073], std=[0.26862954, 0.26130258, 0.27577711])


def request(**fields) -> pb.ScoreRequest:
    d = png(1)
    return pb.ScoreRequest(request_id="q", prompt=pb.Prompt(text="USER: <img>\nWhat? ASSISTANT:",
                           images=[pb.Image(data=d, sha256=sha(d))]), options=["red", "blue"],
                           **fields)


EVERYTHING = ScoreFeatures.everything()


def refused(req: pb.ScoreRequest, features: ScoreFeatures = EVERYTHING) -> str:
    with pytest.raises(InvalidRequest) as err:
        check_score(req, BackendInfo("m", "b", "fp", score_features=features))
    return str(err.value)


def test_request_fields_are_checked_by_name():
    squash = pb.ImagePreprocessing(mode=pb.ImagePreprocessing.MODE_SQUASH, **CLIP)
    recipe, prep = recipe_of(request(raw_prompt=True, image_preprocessing=squash,
                                     scoring_window=LAST_OPTION_LENGTH, option_suffix="</s>"))
    assert recipe.window == LAST_OPTION_LENGTH and recipe.option_suffix == "</s>"
    assert prep.mode == SQUASH and prep.size == 0 and prep.mean == tuple(CLIP["mean"])
    assert recipe_of(request()) == (None, prep.__class__())  # the original fields only
    assert "raw prompts only" in refused(request(scoring_window=LAST_OPTION_LENGTH))
    assert refused(request(raw_prompt=True, include_end_of_turn=True,
                           option_suffix="</s>")).startswith("include_end_of_turn")
    assert refused(request(image_preprocessing=pb.ImagePreprocessing(
        mode=pb.ImagePreprocessing.MODE_SQUASH, mean=[0.5]))).startswith("image_preprocessing.mean")
    assert refused(request(image_preprocessing=pb.ImagePreprocessing(
        size=336))).startswith("image_preprocessing")
    assert refused(request(image_preprocessing=pb.ImagePreprocessing(
        mode=pb.ImagePreprocessing.MODE_SQUASH, size=-1, **CLIP))).startswith(
        "image_preprocessing.size")
    assert refused(request(scoring_window=7)).startswith("scoring_window: unknown value 7")
    assert "holds <img>" in refused(request(raw_prompt=True, option_prefix=" <img>"))


def test_a_feature_the_backend_does_not_offer_is_refused_with_its_reason():
    features = ScoreFeatures(unsupported={"image_preprocessing": "no fixed-size tower"})
    squash = pb.ImagePreprocessing(mode=pb.ImagePreprocessing.MODE_SQUASH, **CLIP)
    why = refused(request(image_preprocessing=squash), features)
    assert why == ("image_preprocessing: MODE_SQUASH is not offered by this model server: "
                   "no fixed-size tower")
    why = refused(request(raw_prompt=True, scoring_window=LAST_OPTION_LENGTH), features)
    assert why.startswith("scoring_window: SCORING_WINDOW_LAST_OPTION_LENGTH is not offered")
    letters = ScoreFeatures(raw_prompt=False, unsupported={"raw_prompt": "a chat API"})
    assert refused(request(raw_prompt=True), letters).endswith("not offered by this model "
                                                               "server: a chat API")
    recipe, prep = recipe_of(request())
    check_supported(request(), recipe, prep, ScoreFeatures())  # the legacy set takes it


def test_an_older_server_without_typed_features_reads_as_the_legacy_set():
    old = pb.InfoResponse(name="m", backend="b", capabilities=pb.Capabilities(score=True))
    assert score_features(old) == legacy_score_features()
    assert ScoreFeatures().message() == legacy_score_features()
    assert not plan.preset_refusal("ppl", presets.get("seed1-instructblip"), old)
    why = plan.preset_refusal("ppl", presets.get("llava-1.5"), old)
    assert "squash image preprocessing (image_preprocessing)" in why
    assert "last-option-length scoring window (scoring_window)" in why


def test_decisions_ignore_details():
    """Info.details is informational: words there that once refused a run change nothing."""
    full = pb.InfoResponse(name="m", backend="b", capabilities=pb.Capabilities(
        score=True, score_features=ScoreFeatures.everything().message()),
        details={"score_mode": "chat-letter", "score_end_of_turn": "refused: no",
                 "score_raw_prompt": "refused: no"})
    for name, p in presets.PRESETS.items():
        method = p.methods[0] if p.methods else "ppl"
        assert plan.method_refusal(method, full) is None
        assert plan.preset_refusal(method, p, full) is None, name


# -- over gRPC: Info's typed fields and refusals before any question --------------------------


@pytest.fixture(scope="module")
def qwen(tmp_path_factory):
    path = tiny_model("qwen2_vl", tmp_path_factory.getbasetemp())
    with model_server(["--backend", "hf", "--model", str(path), "--log-level", "WARNING"]) as (t, _):
        with grpc.insecure_channel(t) as ch:
            yield t, pb_grpc.ModelServiceStub(ch)


def test_hf_info_says_what_its_score_honours(qwen, tmp_path_factory):
    _, stub = qwen
    info = stub.Info(pb.InfoRequest(), timeout=30)
    f = info.capabilities.score_features
    assert f.option_texts and f.raw_prompt and f.end_of_turn and f.option_affixes
    assert set(f.scoring_windows) == set(pb.ScoringWindow.values())
    assert list(f.image_preprocessing) == [pb.ImagePreprocessing.MODE_MODEL_PROCESSOR]
    assert list(f.image_texts) == [pb.IMAGE_TEXT_TEMPLATE_MARKER]
    reasons = {u.feature: u.reason for u in f.unsupported}
    assert "qwen2_vl processor" in reasons["image_preprocessing"]
    assert info.limits.context_tokens == 4096 and info.limits.max_option_tokens == 16384


def test_squash_is_refused_on_a_model_without_a_fixed_size_tower(qwen):
    """Defence in depth: a client that skipped Info gets INVALID_ARGUMENT naming the field."""
    _, stub = qwen
    req = methods.score_request(
        Question(0, "q", "What?", ("a", "b", "c", "d"), "A", 1, ()), "ppl",
        presets.get("llava-1.5"), [pb.Image(data=png(2), sha256=sha(png(2)))])
    with pytest.raises(grpc.RpcError) as err:
        stub.Score(req, timeout=60)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details().startswith("[q] image_preprocessing: MODE_SQUASH is not offered")


def test_llava_1_5_on_qwen2_vl_is_refused_before_any_question(qwen, tmp_path, capsys):
    target, _ = qwen
    ann, roots = write_sample(tmp_path / "data", per_dim=1)
    out = tmp_path / "out"
    assert cli.main(run_args(ann, roots, target, out, "--preset", "llava-1.5",
                             "--dimensions", "1,2")) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "--preset llava-1.5 cannot run on tiny-qwen2_vl (hf)" in err
    assert "squash image preprocessing (image_preprocessing)" in err
    assert "model-token (image_text)" in err and "use --preset chat-mean" in err
    assert Store.count_answers(out) == 0 and Store.count_answers(out, "error") == 0
    assert not (out / "summary.json").exists() or json.loads(
        (out / "summary.json").read_text())["counts"]["answered"] == 0
