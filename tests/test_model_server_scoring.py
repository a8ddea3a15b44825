"""Score over real gRPC equals an independent per-option computation (two architectures)."""

from __future__ import annotations

import io

import grpc
import pytest
import torch
import transformers
from PIL import Image
from transformers import AutoProcessor

from protos import seedbench_pb2 as pb
from protos import seedbench_pb2_grpc as pb_grpc
from tests.images import png, sha
from tests.procs import model_server
from tests.tiny_models import tiny_model

ARCHS = ["llava", "qwen2_vl"]

CASES = {
    "single": ("What is the main colour of this picture?", [png(1)],
               ["Red", "a green field", "blue sky over 3 hills", "none"]),
    "multi": ("Which of the two images is brighter?", [png(2), png(3, (64, 64))],
              ["The first", "the second one", "Both", "neither of them"]),
    "interleaved": ("Caption: <img> a box. Next: <img> what is it?", [png(4), png(5)],
                    ["A box", "a circle", "two boxes", "Nothing"]),
}


def request(rid, text, images, options, eot=False):
    return pb.ScoreRequest(
        request_id=rid, include_end_of_turn=eot, options=options,
        prompt=pb.Prompt(text=text, images=[pb.Image(data=d, sha256=sha(d)) for d in images]))


class Reference:
    """The reference method, written independently of the backend: for each option one
    full forward pass over the processor's encoding of prompt + option."""

    def __init__(self, path):
        cfg = transformers.AutoConfig.from_pretrained(path)
        cls = getattr(transformers, cfg.architectures[0])
        self.model = cls.from_pretrained(path, dtype=torch.float32).eval()
        self.processor = AutoProcessor.from_pretrained(path)

    def _content(self, text, n):
        if "<img>" not in text:
            return [{"type": "image"}] * n + [{"type": "text", "text": text}]
        out = []
        for k, piece in enumerate(text.split("<img>")):
            if k:
                out.append({"type": "image"})
            if piece:
                out.append({"type": "text", "text": piece})
        return out

    @torch.no_grad()
    def scores(self, text, images, options, eot=False):
        pil = [Image.open(io.BytesIO(d)).convert("RGB") for d in images]
        user = {"role": "user", "content": self._content(text, len(pil))}
        prompt = self.processor.apply_chat_template([user], add_generation_prompt=True, tokenize=False)
        prompt_ids = list(self.processor(text=[prompt], images=pil or None)["input_ids"][0])
        out = []
        for opt in options:
            msgs = [user, {"role": "assistant", "content": [{"type": "text", "text": opt}]}]
            cut = self.processor.apply_chat_template(msgs, continue_final_message=True, tokenize=False)
            seq = self.processor.apply_chat_template(msgs, tokenize=False) if eot else cut
            enc = self.processor(text=[seq], images=pil or None, return_tensors="pt")
            ids = enc["input_ids"][0].tolist()
            end = len(ids)
            if eot:
                cut_ids = list(self.processor(text=[cut], images=pil or None)["input_ids"][0])
                end = next(k for k in range(len(cut_ids) + 1)
                           if k == len(cut_ids) or cut_ids[k] != ids[k]) + 1
            begin = next(k for k in range(len(ids)) if k >= len(prompt_ids) or ids[k] != prompt_ids[k])
            logp = torch.log_softmax(self.model(**enc).logits[0].float(), dim=-1)
            total = sum(float(logp[k - 1, ids[k]]) for k in range(begin, end))
            out.append((total, end - begin))
        return out


@pytest.fixture(scope="module", params=ARCHS)
def served(request, tmp_path_factory):
    path = tiny_model(request.param, tmp_path_factory.getbasetemp())
    with model_server(["--backend", "hf", "--model", str(path)]) as (target, _):
        with grpc.insecure_channel(target) as ch:
            yield request.param, pb_grpc.ModelServiceStub(ch), Reference(path)


@pytest.mark.parametrize("case", list(CASES))
def test_scores_match_independent_per_option_forward(served, case):
    arch, stub, ref = served
    text, images, options = CASES[case]
    got = stub.Score(request(case, text, images, options), timeout=60).scores
    want = ref.scores(text, images, options)
    assert len(got) == len(options)
    for g, (w_sum, w_n) in zip(got, want, strict=True):
        assert g.num_tokens == w_n
        assert abs(g.logprob_sum - w_sum) < 1e-4, (arch, case, g.logprob_sum, w_sum)


def test_end_of_turn_token_counts_when_asked(served):
    _, stub, ref = served
    text, images, options = CASES["single"]
    got = stub.Score(request("eot", text, images, options, eot=True), timeout=60).scores
    plain = stub.Score(request("plain", text, images, options), timeout=60).scores
    for g, p, (w_sum, w_n) in zip(got, plain, ref.scores(text, images, options, eot=True),
                                  strict=True):
        assert g.num_tokens == w_n == p.num_tokens + 1
        assert abs(g.logprob_sum - w_sum) < 1e-4


def test_option_order_does_not_change_scores(served):
    _, stub, _ = served
    text, images, options = CASES["multi"]
    base = stub.Score(request("p0", text, images, options), timeout=60).scores
    perm = [2, 0, 3, 1]
    permuted = stub.Score(request("p1", text, images, [options[k] for k in perm]), timeout=60).scores
    for pos, k in enumerate(perm):
        assert abs(permuted[pos].logprob_sum - base[k].logprob_sum) < 1e-5
        assert permuted[pos].num_tokens == base[k].num_tokens


def test_letter_options_are_scored_like_any_option(served):
    """'PPL for A/B/C/D': the options are listed in the prompt and the letters scored."""
    _, stub, ref = served
    text, images, options = CASES["single"]
    listed = text + "\n" + "\n".join(f"{c}. {o}" for c, o in zip("ABCD", options, strict=True))
    listed += "\nAnswer with the option's letter from the given choices directly."
    got = stub.Score(request("letters", listed, images, list("ABCD")), timeout=60).scores
    for g, (w_sum, w_n) in zip(got, ref.scores(listed, images, list("ABCD")), strict=True):
        assert g.num_tokens == w_n >= 1
        assert abs(g.logprob_sum - w_sum) < 1e-4


def test_concurrent_calls_are_batched_without_mixing_results(served):
    _, stub, _ = served
    cases = list(CASES.items()) * 3
    singles = {name: stub.Score(request(name, *c), timeout=60).scores for name, c in CASES.items()}
    futures = [stub.Score.future(request(f"{name}-{k}", *c), timeout=120)
               for k, (name, c) in enumerate(cases)]
    for (name, _), fut in zip(cases, futures, strict=True):
        for a, b in zip(fut.result().scores, singles[name], strict=True):
            assert abs(a.logprob_sum - b.logprob_sum) < 1e-4 and a.num_tokens == b.num_tokens


def test_info_reports_model(served):
    arch, stub, _ = served
    info = stub.Info(pb.InfoRequest(), timeout=10)
    assert info.backend == "hf" and info.capabilities.score
    assert not info.capabilities.generate_image
    assert len(info.fingerprint) == 16
    assert info.details["model_type"] == arch
    assert info.details["prefix_sharing"] == "on"
    assert info.details["option_scoring"] == "cache copy"  # auto on a CPU: measured faster


def test_per_option_path_matches_too(tmp_path_factory):
    path = tiny_model("llava", tmp_path_factory.getbasetemp())
    text, images, options = CASES["interleaved"]
    want = Reference(path).scores(text, images, options)
    with model_server(["--backend", "hf", "--model", str(path),
                       "--backend-arg", "prefix_sharing=false"]) as (target, _):
        with grpc.insecure_channel(target) as ch:
            stub = pb_grpc.ModelServiceStub(ch)
            assert stub.Info(pb.InfoRequest()).details["prefix_sharing"].startswith("off")
            got = stub.Score(request("ref", text, images, options), timeout=60).scores
    for g, (w_sum, w_n) in zip(got, want, strict=True):
        assert g.num_tokens == w_n and abs(g.logprob_sum - w_sum) < 1e-4


def test_preparing_in_worker_threads_scores_the_same(tmp_path_factory):
    """What the server does on an accelerator, forced on the CPU."""
    path = tiny_model("qwen2_vl", tmp_path_factory.getbasetemp())
    ref = Reference(path)
    with model_server(["--backend", "hf", "--model", str(path),
                       "--backend-arg", "prepare_ahead=true"]) as (target, _):
        with grpc.insecure_channel(target) as ch:
            stub = pb_grpc.ModelServiceStub(ch)
            assert stub.Info(pb.InfoRequest()).details["prepare"] == "worker threads"
            futures = {name: stub.Score.future(request(name, *c), timeout=120)
                       for name, c in CASES.items()}
            for name, fut in futures.items():
                want = ref.scores(*CASES[name])
                for g, (w_sum, w_n) in zip(fut.result().scores, want, strict=True):
                    assert g.num_tokens == w_n and abs(g.logprob_sum - w_sum) < 1e-4
