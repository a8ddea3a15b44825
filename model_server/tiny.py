"""Tiny random vision-language models built offline from configs, for tests and the demo.

Each maker writes a complete model directory (config, weights, processor, and a
tokenizer built in code) that loads with from_pretrained like a real checkpoint,
so the serving code paths are exactly the ones a real model takes. Weights are
random but fixed by the seed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

BYTE_ALPHABET = sorted(pre_tokenizers.ByteLevel.alphabet())
SPACE = "\u0120"  # byte-level "space" symbol


def byte_tokenizer(special_tokens: list[str], *, eos: str, pad: str, bos: str | None = None,
                   chat_template: str = "") -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer with a few merges (space+letter, letter pairs).

    The merges make tokens cross the question/answer boundary the way real
    tokenizers do ("ASSISTANT: " + "A" -> "ĠA"), which the scorer must handle.
    """
    vocab = {ch: i for i, ch in enumerate(BYTE_ALPHABET)}
    merges = []
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    for a in letters + [c.upper() for c in letters]:
        merges.append((SPACE, a))
    for a in letters:
        for b in letters:
            merges.append((a, b))
    for a, b in merges:
        vocab.setdefault(a + b, len(vocab))
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=eos, pad_token=pad,
                                   bos_token=bos, unk_token=None)
    fast.add_special_tokens({"additional_special_tokens": [
        t for t in special_tokens if t not in (eos, pad, bos)
    ]})
    if chat_template:
        fast.chat_template = chat_template
    return fast


# USER turn: images and text in the order given; ASSISTANT turn ends with </s>.
LLAVA_TEMPLATE = (
    "{% for m in messages %}"
    "{% if m['role'] == 'user' %}USER: "
    "{% for c in m['content'] %}{% if c['type'] == 'image' %}<image>\n"
    "{% else %}{{ c['text'] }}{% endif %}{% endfor %}\n"
    "{% else %}ASSISTANT: {% for c in m['content'] %}{{ c['text'] }}{% endfor %}</s>\n"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}ASSISTANT: {% endif %}"
)

# The layout of llava-hf's LLaVA-1.5 chat template: each turn "ROLE: ", its images first
# ("<image>\n" each), then its text followed by a space; no system line, and the assistant
# turn ends with that space rather than "</s>". Paired with a tokenizer that adds BOS, as
# LLaMA's does. The SEED-Bench LLaVA-1.5 interface differs from it (presets: llava-1.5).
LLAVA_HF_TEMPLATE = (
    "{% for m in messages %}{{ m['role'].upper() + ': ' }}"
    "{% for c in m['content'] %}{% if c['type'] == 'image' %}<image>\n{% endif %}{% endfor %}"
    "{% for c in m['content'] %}{% if c['type'] == 'text' %}{{ c['text'] + ' ' }}{% endif %}"
    "{% endfor %}{% endfor %}"
    "{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)

QWEN_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
    "{% for c in m['content'] %}{% if c['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% else %}{{ c['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def _text_dims(vocab_size: int) -> dict:
    return dict(vocab_size=vocab_size, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096)


# Sizes: "tiny" for tests; "demo" for the trained demo model; "small" (LLaVA-1.5's 224 px / 256 image
# tokens layout at toy width) for CPU benchmarks; "mid" (~1B parameters, 336 px /
# 576 image tokens like LLaVA-1.5) for GPU benchmarks; "7b": LLaVA-1.5-7B's shapes
# (Vicuna-7B language model, CLIP ViT-L/14-336 tower, 2-layer MLP projector). Its
# context is 8,192 rather than 4,096 so eight-frame prompts (4,608 image tokens) fit.
LLAVA_PRESETS = {
    "tiny": dict(image_size=32, patch=8, vision=dict(hidden_size=32, intermediate_size=64,
                 num_hidden_layers=2, num_attention_heads=2), text={}),
    # "tiny" widths, 48 text layers: a token costs ~10 ms or more on a CPU, and generation
    # never writes the end-of-sequence token, so it runs to max_new_tokens: long enough to
    # time a client's deadline against (tests/test_bad_requests.py).
    "deep": dict(image_size=32, patch=8, vision=dict(hidden_size=32, intermediate_size=64,
                 num_hidden_layers=2, num_attention_heads=2), text=dict(num_hidden_layers=48),
                 never_ends=True),
    # The trained demo model (models/demo-llava): 4 image tokens, ~0.9M parameters.
    "demo": dict(image_size=32, patch=16, vision=dict(hidden_size=64, intermediate_size=256,
                 num_hidden_layers=3, num_attention_heads=4),
                 text=dict(hidden_size=128, intermediate_size=256, num_hidden_layers=3)),
    "small": dict(image_size=224, patch=14, vision=dict(hidden_size=64, intermediate_size=128,
                  num_hidden_layers=2, num_attention_heads=2),
                  text=dict(hidden_size=128, intermediate_size=256, num_hidden_layers=2)),
    "mid": dict(image_size=336, patch=14, vision=dict(hidden_size=1024, intermediate_size=4096,
                num_hidden_layers=12, num_attention_heads=16),
                text=dict(hidden_size=2048, intermediate_size=5632, num_hidden_layers=16,
                          num_attention_heads=16, num_key_value_heads=16)),
    "7b": dict(image_size=336, patch=14, vision=dict(hidden_size=1024, intermediate_size=4096,
               num_hidden_layers=24, num_attention_heads=16),
               text=dict(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                         num_attention_heads=32, num_key_value_heads=32, vocab_size=32000,
                         max_position_embeddings=8192)),
}
# Presets whose weights are never written: the loader builds them on its device
# (seconds on a GPU for 7B, where writing and reading 14 GB would take minutes).
RANDOM_INIT_PRESETS = {"7b"}
MARKER = "TINY_MODEL.json"


def make_llava(out: Path, seed: int = 0, preset: str = "tiny", random_init: bool = False,
               hf_style: bool = False) -> Path:
    """A tiny LLaVA; `hf_style`: llava-hf's chat template layout and a BOS-adding tokenizer."""
    from tokenizers import processors
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    template = LLAVA_HF_TEMPLATE if hf_style else LLAVA_TEMPLATE
    tok = byte_tokenizer(["<image>", "</s>", "<pad>", "<s>"], eos="</s>", pad="<pad>", bos="<s>",
                         chat_template=template)
    if hf_style:
        bos = tok.convert_tokens_to_ids("<s>")
        tok.backend_tokenizer.post_processor = processors.TemplateProcessing(
            single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", bos)])
    size = LLAVA_PRESETS[preset]
    image_size, patch = size["image_size"], size["patch"]
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(**size["vision"], image_size=image_size, patch_size=patch),
        text_config=LlamaConfig(**{**_text_dims(len(tok)), **size["text"]},
                                bos_token_id=tok.bos_token_id,
                                eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id),
        image_token_index=tok.convert_tokens_to_ids("<image>"),
        vision_feature_layer=-2, vision_feature_select_strategy="default",
        image_seq_length=(image_size // patch) ** 2,
    )
    config.pad_token_id = tok.pad_token_id
    processor = LlavaProcessor(
        image_processor=CLIPImageProcessor(size={"shortest_edge": image_size},
                                           crop_size={"height": image_size, "width": image_size}),
        tokenizer=tok, patch_size=patch, vision_feature_select_strategy="default",
        num_additional_image_tokens=1, chat_template=template,
    )
    if random_init or preset in RANDOM_INIT_PRESETS:
        config.architectures = [LlavaForConditionalGeneration.__name__]
        if preset in ("mid", "7b"):
            config.dtype = "bfloat16"
        return _save_random_init(out, config, processor, seed)
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config).eval()
    if size.get("never_ends"):
        model.generation_config.suppress_tokens = [tok.eos_token_id]
    if preset == "mid":  # ~1B parameters: store as bfloat16, as real checkpoints are
        model = model.to(torch.bfloat16)
    return _save(out, model, processor)


def make_qwen2_vl(out: Path, seed: int = 0) -> Path:
    from transformers import (
        Qwen2VLConfig,
        Qwen2VLForConditionalGeneration,
        Qwen2VLImageProcessor,
        Qwen2VLProcessor,
    )
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>",
                "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]
    tok = byte_tokenizer(specials, eos="<|im_end|>", pad="<|endoftext|>", chat_template=QWEN_TEMPLATE)
    ids = tok.convert_tokens_to_ids
    text = _text_dims(len(tok))
    text.update(bos_token_id=None, eos_token_id=ids("<|im_end|>"), pad_token_id=ids("<|endoftext|>"))
    text["rope_parameters"] = {"rope_type": "default", "rope_theta": 10000.0,
                               "mrope_section": [2, 3, 3]}  # sums to head_dim / 2
    config = Qwen2VLConfig(
        text_config=text,
        vision_config=dict(depth=2, embed_dim=32, hidden_size=64, num_heads=2, mlp_ratio=2,
                           patch_size=14, spatial_merge_size=2, temporal_patch_size=2),
        image_token_id=ids("<|image_pad|>"), video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"), vision_end_token_id=ids("<|vision_end|>"),
    )
    torch.manual_seed(seed)
    model = Qwen2VLForConditionalGeneration(config).eval()
    pixels = dict(min_pixels=56 * 56, max_pixels=84 * 84, patch_size=14, merge_size=2,
                  temporal_patch_size=2)
    processor = Qwen2VLProcessor(
        image_processor=Qwen2VLImageProcessor(**pixels),
        video_processor=Qwen2VLVideoProcessor(**pixels),
        tokenizer=tok, chat_template=QWEN_TEMPLATE,
    )
    return _save(out, model, processor)


def _save(out: Path, model, processor) -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    (out / MARKER).write_text(json.dumps(
        {"note": "random weights for tests; not a real model",
         "architecture": model.config.architectures}, indent=1))
    return out


def _save_random_init(out: Path, config, processor, seed: int) -> Path:
    """Config, processor and tokenizer only; the weights are made where the model loads."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    config.save_pretrained(out)
    processor.save_pretrained(out)
    (out / MARKER).write_text(json.dumps(
        {"note": "random weights made on load (seeded); not a real model",
         "architecture": config.architectures, "random_init": True, "seed": seed}, indent=1))
    return out


def random_init_seed(path: Path) -> int | None:
    """The seed if `path` is a model directory whose weights are made on load, else None."""
    marker = Path(path) / MARKER
    if not marker.is_file():
        return None
    info = json.loads(marker.read_text())
    return int(info.get("seed", 0)) if info.get("random_init") else None


def build_random(model_cls, config, dtype: torch.dtype, device: str, seed: int):
    """Seeded random weights allocated and initialised directly on `device`, in `dtype`
    (no CPU copy: a 7B model takes seconds on a GPU). Same seed and device: same weights."""
    torch.manual_seed(seed)
    with torch.device(device):
        model = model_cls._from_config(config, dtype=dtype)
    return model.eval()


def _make_janus(out: Path, seed: int = 0) -> Path:
    from model_server.tiny_janus import make_tiny_janus

    return make_tiny_janus(out, seed=seed)


def _make_llava_hf(out: Path, seed: int = 0) -> Path:
    return make_llava(out, seed=seed, hf_style=True)


ARCHS: dict[str, Callable[..., Path]] = {
    "llava": make_llava,
    "llava_hf": _make_llava_hf,
    "qwen2_vl": make_qwen2_vl,
    "janus": _make_janus,
}


def make_tiny(arch: str, out: str | Path, seed: int = 0, preset: str = "tiny",
              random_init: bool = False) -> Path:
    if preset != "tiny" or random_init:
        if arch != "llava":
            raise ValueError(f"preset {preset!r} and random-init exist for llava only")
        return make_llava(Path(out), seed=seed, preset=preset, random_init=random_init)
    return ARCHS[arch](Path(out), seed=seed)
