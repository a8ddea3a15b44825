"""Benchmark layouts whose weights are made on load: same weights as a saved model of the
same seed, and the 7b preset has LLaVA-1.5-7B's shapes."""

from __future__ import annotations

import torch
import transformers

from model_server import backends
from model_server.fingerprint import WEIGHT_SUFFIXES
from model_server.tiny import build_random
from tests.test_prefix_sharing import MIXED


def _tiny_cli(*args):
    """`seedbench-model-server tiny --arch llava ARGS`, parsed and run in this process (which
    has torch and transformers loaded already)."""
    from model_server.cli import build_parser

    parsed = build_parser().parse_args(["tiny", "--arch", "llava", *args])
    assert parsed.func(parsed) == 0


def test_random_init_model_scores_like_the_saved_one_of_the_same_seed(tmp_path):
    out = tmp_path / "made-on-load"
    _tiny_cli("--random-init", "--out", str(out))
    assert not [p for p in out.iterdir() if p.suffix in WEIGHT_SUFFIXES]
    _tiny_cli("--out", str(tmp_path / "saved"))  # the same seed, weights written
    made = backends.create("hf", str(out), device="cpu")
    saved = backends.create("hf", str(tmp_path / "saved"), device="cpu")
    for x, y in zip(made.model.state_dict().values(), saved.model.state_dict().values(),
                    strict=True):
        assert torch.equal(x, y)
    for got, want in zip(made.score(MIXED), saved.score(MIXED), strict=True):
        assert [g.logprob_sum for g in got] == [w.logprob_sum for w in want]


def test_7b_preset_has_llava_1_5_7b_shapes(tmp_path):
    out = tmp_path / "7b"
    _tiny_cli("--preset", "7b", "--out", str(out))
    config = transformers.AutoConfig.from_pretrained(out)
    text, vision = config.text_config, config.vision_config
    assert (text.hidden_size, text.num_hidden_layers, text.num_attention_heads,
            text.intermediate_size, text.vocab_size) == (4096, 32, 32, 11008, 32000)
    assert (vision.hidden_size, vision.num_hidden_layers, vision.num_attention_heads,
            vision.image_size, vision.patch_size) == (1024, 24, 16, 336, 14)
    assert config.image_seq_length == 576
    model = build_random(transformers.LlavaForConditionalGeneration, config, torch.bfloat16,
                         "meta", seed=0)  # shapes only: nothing allocated
    n = sum(p.numel() for p in model.parameters())
    assert 7.0e9 < n < 7.1e9 and next(model.parameters()).dtype == torch.bfloat16
