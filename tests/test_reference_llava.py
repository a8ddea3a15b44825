"""`--preset llava-1.5` scores exactly what the SEED-Bench-2 LLaVA-1.5 interface does.

The model is a tiny LLaVA with llava-hf's chat template layout (its assistant
turn ends with a space, no system line) and a BOS-adding tokenizer, served over
gRPC by the hf backend under each scoring strategy. The reference below is
written from the benchmark spec's description alone, sharing no code with the
evaluator or the server: its own conversation string (system line, USER/
ASSISTANT, "</s>" after the option), its own tokenisation around "<image>" and
window arithmetic (the last len(tokenizer(option).input_ids) tokens, BOS
counted), its own PIL BICUBIC squash + CLIP normalisation, and one full
forward per option with transformers directly. Images are NOT square; one
question has two images and no <img> (only the first is used), one is
interleaved (<img> inline), one is eight video frames.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoTokenizer, LlavaForConditionalGeneration

from evaluator import load_run
from tests.evaluator_runs import run
from tests.images import png
from tests.procs import model_server
from tests.tiny_models import tiny_model

SYSTEM = ("A chat between a curious human and an artificial intelligence assistant. The "
          "assistant gives helpful, detailed, and polite answers to the human's questions.")
MEAN = np.array([0.48145466, 0.4578275, 0.40821073], dtype=np.float32)
STD = np.array([0.26862954, 0.26130258, 0.27577711], dtype=np.float32)
SRC = "SEED-Bench v2"
SIZES = [(48, 30), (30, 52), (64, 40), (40, 24), (36, 60)] + [(50, 34)] * 8

QUESTIONS = [  # (id, dim, subpart, data_type, text, images, choices, answer)
    ("single", 1, "Single-Image & Text Comprehension", "Single Image",
     "What is the main colour of this picture?", [0], ("red", "a green field", "blue sky", "none"),
     "A"),
    ("multi", 17, "Multiple-Images & Text Comprehension", "Multiple Images",
     "Which of the two images is brighter?", [1, 2],
     ("the first", "the second", "both of them equally", "neither"), "B"),
    ("inter", 23, "Interleaved Image & Text Comprehension", "Interleaved Image",
     "Caption: <img> a box. Next: <img> what is it?", [3, 4],
     ("a box", "a circle", "two boxes", "nothing at all"), "C"),
    ("video", 19, "Video & Text Comprehension", "Video", "Where does the thing move?",
     list(range(5, 13)), ("left", "right", "up", "down"), "D"),
]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("llava-ref")
    (root / "media").mkdir()
    for k, size in enumerate(SIZES):
        (root / "media" / f"{k}.png").write_bytes(png(k, size))
    qs = []
    for qid, dim, subpart, data_type, text, images, choices, answer in QUESTIONS:
        a, b, c, d = choices
        qs.append({"question_id": qid, "question_type_id": dim, "question": text,
                   "choice_a": a, "choice_b": b, "choice_c": c, "choice_d": d, "answer": answer,
                   "data_id": [f"{k}.png" for k in images], "data_source": SRC,
                   "level": "L2" if dim == 23 else "L1", "version": "v2", "subpart": subpart,
                   "data_type": data_type})
    ann = root / "ann.json"
    ann.write_text(json.dumps({"questions": qs}))
    return ann, {SRC: root / "media"}, root


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return tiny_model("llava_hf", tmp_path_factory.getbasetemp())


# ---------------------------------------------------------------- the reference, from the spec


class Reference:
    """The LLaVA-1.5 interface as the spec describes it, on this model directory."""

    def __init__(self, path):
        self.tok = AutoTokenizer.from_pretrained(path)
        self.model = LlavaForConditionalGeneration.from_pretrained(path, dtype=torch.float32).eval()
        v = self.model.config.vision_config
        self.side = v.image_size
        self.per_image = (v.image_size // v.patch_size) ** 2  # CLS dropped ("default")
        self.image_id = self.model.config.image_token_id

    def pixels(self, path) -> torch.Tensor:
        with Image.open(path) as im:
            rgb = im.convert("RGB").resize((self.side, self.side), Image.BICUBIC)
        x = np.asarray(rgb, dtype=np.float32) / 255.0
        return torch.from_numpy(((x - MEAN) / STD).transpose(2, 0, 1).copy())

    def ids(self, prompt: str) -> list[int]:
        """Each text piece around "<image>" tokenised alone (each gets BOS; only the first
        keeps it), every image standing for its features' positions."""
        chunks = [self.tok(c).input_ids for c in prompt.split("<image>")]
        out = chunks[0][:]
        for c in chunks[1:]:
            out += [self.image_id] * self.per_image + c[1:]
        return out

    def mean_logprobs(self, question: str, image_paths, choices) -> list[tuple[float, int, int]]:
        if "<img>" in question:
            qs, used = question.replace("<img>", "<image>"), image_paths
        else:
            qs, used = "<image>\n" + question, image_paths[:1]
        pixel_values = torch.stack([self.pixels(p) for p in used])
        out = []
        for option in choices:
            prompt = f"{SYSTEM} USER: {qs} ASSISTANT: {option}</s>"
            ids = torch.tensor([self.ids(prompt)])
            n = len(self.tok(option).input_ids)
            with torch.no_grad():
                logits = self.model(input_ids=ids, attention_mask=torch.ones_like(ids),
                                    pixel_values=pixel_values).logits[0]
            logp = torch.log_softmax(logits[:-1].float(), dim=-1)
            targets = ids[0, 1:]
            per_token = logp[torch.arange(len(targets)), targets][-n:]
            out.append((float(per_token.mean()), n, int(ids[0, -1])))
        return out


def stored(out):
    """question id -> (prediction, option scores) of the answered questions (public API)."""
    return {q.question_id: (q.prediction, q.evidence)
            for q in load_run(out).questions(evidence=True) if q.status == "ok"}


@pytest.mark.parametrize("setting", ["prefix_sharing=false", "packing=false", "packing=true"],
                         ids=["per-option", "cache-copy", "packed"])
def test_llava_1_5_preset_scores_what_the_interface_does(data, model, tmp_path, setting):
    ann, roots, root = data
    ref = Reference(model)
    assert ref.tok("x").input_ids[0] == ref.tok.bos_token_id  # the window counts this BOS
    with model_server(["--backend", "hf", "--model", str(model), "--backend-arg", setting,
                       "--log-level", "WARNING"]) as (target, _):
        assert not run(ann, roots, target, tmp_path, preset="llava-1.5").all_failed
    rows = stored(tmp_path)
    assert set(rows) == {q[0] for q in QUESTIONS}
    worst = 0.0
    for qid, _, _, _, text, images, choices, _ in QUESTIONS:
        want = ref.mean_logprobs(text, [root / "media" / f"{k}.png" for k in images], choices)
        prediction, scores = rows[qid]
        assert [s["num_tokens"] for s in scores] == [n for _, n, _ in want], qid
        assert all(last == ref.tok.eos_token_id for _, _, last in want)  # "</s>" is scored
        got = [s["logprob_sum"] / s["num_tokens"] for s in scores]
        worst = max(worst, *(abs(g - w) for g, (w, _, _) in zip(got, want, strict=True)))
        assert prediction == "ABCD"[max(range(4), key=lambda i: (want[i][0], -i))], qid
    assert worst <= 1e-4
