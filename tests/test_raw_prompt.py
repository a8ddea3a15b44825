"""Score with raw_prompt=true over real gRPC: no chat template reaches the model.

The reference below builds the raw sequence itself (the architecture's own image
tokens, the prompt, the option, the tokenizer's end-of-sequence token), checks
that its token ids hold none of the chat template's tokens, and scores it with
one forward pass per option; the server must give the same numbers.
"""

from __future__ import annotations

import io

import grpc
import pytest
import torch
import transformers
from PIL import Image
from transformers import AutoProcessor

from model_server.backends.base import ScoreTask
from model_server.backends.chat_prompt import image_marker, raw_renders, render_raw
from model_server.tiny import LLAVA_TEMPLATE
from protos import seedbench_pb2 as pb
from protos import seedbench_pb2_grpc as pb_grpc
from serving.errors import InvalidRequest
from tests.images import png, sha
from tests.procs import model_server
from tests.tiny_models import tiny_model

# How each architecture writes one image in its text, written out here independently.
IMAGE_TEXT = {"llava": "<image>\n", "qwen2_vl": "<|vision_start|><|image_pad|><|vision_end|>"}
# Text only the chat template writes (never the raw prompt).
TEMPLATE_TEXT = {"llava": ["USER:", "ASSISTANT:"], "qwen2_vl": ["<|im_start|>", "<|im_end|>", "assistant"]}
PROMPT = "Question: What is the main colour of this picture?\nAnswer:"
OPTIONS = [" Red", " a green field", " blue sky over 3 hills", " none"]


def request(rid, text, images, options, raw=True, eot=False):
    return pb.ScoreRequest(
        request_id=rid, raw_prompt=raw, include_end_of_turn=eot, options=options,
        prompt=pb.Prompt(text=text, images=[pb.Image(data=d, sha256=sha(d)) for d in images]))


class RawReference:
    def __init__(self, arch, path):
        cfg = transformers.AutoConfig.from_pretrained(path)
        self.model = getattr(transformers, cfg.architectures[0]).from_pretrained(
            path, dtype=torch.float32).eval()
        self.processor = AutoProcessor.from_pretrained(path)
        self.tok = self.processor.tokenizer
        self.arch = arch

    def ids(self, text, pil):
        return self.processor(text=[text], images=pil or None, return_tensors="pt")

    @torch.no_grad()
    def scores(self, text, images, options, eot=False):
        pil = [Image.open(io.BytesIO(d)).convert("RGB") for d in images]
        if "<img>" in text:
            prompt = text.replace("<img>", IMAGE_TEXT[self.arch])
        else:
            prompt = IMAGE_TEXT[self.arch] * len(pil) + text
        prompt_ids = self.ids(prompt, pil)["input_ids"][0].tolist()
        out = []
        for opt in options:
            enc = self.ids(prompt + opt + (self.tok.eos_token if eot else ""), pil)
            ids = enc["input_ids"][0].tolist()
            if eot:  # the end-of-sequence token we appended (Qwen's is <|im_end|>)
                assert ids[-1] == self.tok.eos_token_id
            decoded = self.tok.decode(ids[:-1] if eot else ids)
            for marker in TEMPLATE_TEXT[self.arch]:
                assert marker not in decoded, (marker, decoded)
            begin = next(k for k in range(len(ids)) if k >= len(prompt_ids) or ids[k] != prompt_ids[k])
            logp = torch.log_softmax(self.model(**enc).logits[0].float(), dim=-1)
            out.append((sum(float(logp[k - 1, ids[k]]) for k in range(begin, len(ids))),
                        len(ids) - begin))
        return out


@pytest.fixture(scope="module", params=["llava", "qwen2_vl"])
def served(request, tmp_path_factory):
    path = tiny_model(request.param, tmp_path_factory.getbasetemp())
    with model_server(["--backend", "hf", "--model", str(path)]) as (target, _):
        with grpc.insecure_channel(target) as ch:
            yield request.param, pb_grpc.ModelServiceStub(ch), RawReference(request.param, path)


@pytest.mark.parametrize("eot", [False, True])
@pytest.mark.parametrize("case", ["one image", "two images", "placeholders"])
def test_raw_prompt_scores_equal_the_template_free_reference(served, case, eot):
    arch, stub, ref = served
    text, images = {"one image": (PROMPT, [png(1)]),
                    "two images": (PROMPT, [png(2), png(3, (64, 64))]),
                    "placeholders": ("First <img> then <img>. " + PROMPT, [png(4), png(5)])}[case]
    got = stub.Score(request(case, text, images, OPTIONS, eot=eot), timeout=60).scores
    want = ref.scores(text, images, OPTIONS, eot=eot)
    for g, (w_sum, w_n) in zip(got, want, strict=True):
        assert g.num_tokens == w_n, (arch, case)
        assert abs(g.logprob_sum - w_sum) < 1e-4, (arch, case, g.logprob_sum, w_sum)


def test_raw_and_templated_requests_differ(served):
    _, stub, _ = served
    raw = stub.Score(request("r", PROMPT, [png(1)], OPTIONS), timeout=60).scores
    chat = stub.Score(request("c", PROMPT, [png(1)], OPTIONS, raw=False), timeout=60).scores
    assert [s.logprob_sum for s in raw] != [s.logprob_sum for s in chat]


def test_eos_adds_exactly_one_token_per_option(served):
    _, stub, _ = served
    plain = stub.Score(request("p", PROMPT, [png(1)], OPTIONS), timeout=60).scores
    eos = stub.Score(request("e", PROMPT, [png(1)], OPTIONS, eot=True), timeout=60).scores
    assert [s.num_tokens for s in eos] == [s.num_tokens + 1 for s in plain]
    assert all(e.logprob_sum < p.logprob_sum for e, p in zip(eos, plain, strict=True))


def test_image_marker_is_what_the_template_writes_for_an_image():
    from jinja2 import Template

    def apply(msgs, **kw):
        return Template(LLAVA_TEMPLATE).render(messages=msgs, **kw)

    assert image_marker(apply) == "<image>\n"
    assert image_marker(lambda msgs, **kw: "USER: " + "".join(
        c.get("text", "") for c in msgs[0]["content"])) == ""

    def broken(msgs, **kw):
        raise ValueError("this template needs a system turn")

    assert image_marker(broken) == ""


def test_raw_render_and_refusals():
    r = render_raw("Q <img> and <img>?", 2, " yes", "<i>", "</s>")
    assert (r.prompt, r.answer_end, r.full) == ("Q <i> and <i>?", "Q <i> and <i>? yes",
                                               "Q <i> and <i>? yes</s>")
    task = ScoreTask("q1", "Q?", images=[object()], options=["a"], raw_prompt=True)
    with pytest.raises(InvalidRequest, match="raw_prompt"):
        raw_renders(task, "", "</s>")
    task = ScoreTask("q1", "Q?", images=[], options=["a"], raw_prompt=True, include_end_of_turn=True)
    with pytest.raises(InvalidRequest, match="include_end_of_turn"):
        raw_renders(task, "<i>", None)


def test_raw_prompt_on_the_per_option_path(tmp_path_factory):
    """The reference path (prefix sharing off) reads raw prompts the same way."""
    path = tiny_model("llava", tmp_path_factory.getbasetemp())
    ref = RawReference("llava", path)
    text, images = "Look: <img> and <img>. " + PROMPT, [png(4), png(5)]
    with model_server(["--backend", "hf", "--model", str(path),
                       "--backend-arg", "prefix_sharing=false"]) as (target, _):
        with grpc.insecure_channel(target) as ch:
            stub = pb_grpc.ModelServiceStub(ch)
            assert "off" in stub.Info(pb.InfoRequest(), timeout=30).details["prefix_sharing"]
            got = stub.Score(request("po", text, images, OPTIONS, eot=True), timeout=60).scores
    for g, (w_sum, w_n) in zip(got, ref.scores(text, images, OPTIONS, eot=True), strict=True):
        assert g.num_tokens == w_n and abs(g.logprob_sum - w_sum) < 1e-4
