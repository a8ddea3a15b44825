"""Write a tiny random Janus model directory, offline, for tests and demos of L3.

Janus both understands images and generates them (VQ image tokens), so one
tiny directory exercises Score, Generate and GenerateImage end to end. Nothing
is downloaded: the config, the weights (seeded), a byte-level tokenizer built in
code, the processor and a fresh GenerationConfig are all written here, so the
same seed gives the same directory on every machine.
"""

from __future__ import annotations

import os
from pathlib import Path

from serving import environment

environment.apply()  # before transformers is imported: it reads these once

IMAGE_TOKEN = "<image_placeholder>"
BOI_TOKEN = "<begin_of_image>"
EOI_TOKEN = "<end_of_image>"
BOS_TOKEN = "<|begin_of_sentence|>"
EOS_TOKEN = "<|end_of_sentence|>"
PAD_TOKEN = "<|pad|>"
SPECIAL_TOKENS = [BOS_TOKEN, EOS_TOKEN, PAD_TOKEN, IMAGE_TOKEN, BOI_TOKEN, EOI_TOKEN]

IMAGE_SIZE = 32  # input and generated image side in pixels
PATCH_SIZE = 8  # 32/8 = 4x4 = 16 image tokens per image
TEXT_WIDTH = 32

# User turn: images (expanded by the processor) then text; the assistant turn ends
# with EOS, which is the end-of-turn token scoring may include.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}<|User|>: {% else %}<|Assistant|>: {% endif %}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for item in message['content'] %}"
    "{% if item['type'] == 'image' %}" + IMAGE_TOKEN + "{% elif item['type'] == 'text' %}"
    "{{ item['text'] }}{% endif %}{% endfor %}{% endif %}"
    "{% if message['role'] == 'user' %}{{ '\\n\\n' }}{% else %}{{ eos_token }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|Assistant|>:{% endif %}"
)


def _tokenizer():
    """A byte-level BPE with no merges: every byte is a token, so any text encodes."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    byte_pre = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {ch: i for i, ch in enumerate(alphabet)}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = byte_pre
    tok.decoder = decoders.ByteLevel()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=BOS_TOKEN, eos_token=EOS_TOKEN, pad_token=PAD_TOKEN,
        extra_special_tokens={"image_token": IMAGE_TOKEN, "boi_token": BOI_TOKEN,
                              "eoi_token": EOI_TOKEN},
        padding_side="left", chat_template=CHAT_TEMPLATE,
    )
    return fast


def make_tiny_janus(out_dir: str | os.PathLike, seed: int = 0) -> Path:
    """Build, seed and save a tiny Janus model with processor; return the directory."""
    import torch
    from transformers import (
        GenerationConfig,
        JanusConfig,
        JanusForConditionalGeneration,
        JanusImageProcessor,
        JanusProcessor,
        JanusVisionConfig,
        JanusVQVAEConfig,
        LlamaConfig,
    )

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = _tokenizer()
    vocab_size = len(tokenizer)
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    num_image_tokens = (IMAGE_SIZE // PATCH_SIZE) ** 2

    text_config = LlamaConfig(
        vocab_size=vocab_size, hidden_size=TEXT_WIDTH, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=512,
        bos_token_id=ids[BOS_TOKEN], eos_token_id=ids[EOS_TOKEN], pad_token_id=ids[PAD_TOKEN],
    )
    vision_config = JanusVisionConfig(
        hidden_size=32, num_hidden_layers=1, num_attention_heads=2, image_size=IMAGE_SIZE,
        patch_size=PATCH_SIZE, projection_dim=TEXT_WIDTH, num_image_tokens=num_image_tokens,
        depth=1,
    )
    # GroupNorm uses 32 groups, so VQ channels are multiples of 32.
    # The VQ decoder upsamples 2x per level after the first: 4x4 tokens -> 32x32 pixels.
    vq_config = JanusVQVAEConfig(
        embed_dim=8, num_embeddings=64, latent_channels=32, base_channels=32,
        channel_multiplier=[1, 1, 2, 2], num_res_blocks=1, projection_dim=TEXT_WIDTH,
        image_token_embed_dim=TEXT_WIDTH, num_hidden_layers=1,
    )
    config = JanusConfig(text_config=text_config, vision_config=vision_config, vq_config=vq_config,
                         image_token_id=ids[IMAGE_TOKEN])
    torch.manual_seed(seed)
    model = JanusForConditionalGeneration(config).eval()
    # A fresh GenerationConfig keeps the Janus image fields through save/load.
    model.generation_config = GenerationConfig(
        bos_token_id=ids[BOS_TOKEN], eos_token_id=ids[EOS_TOKEN], pad_token_id=ids[PAD_TOKEN],
        max_new_tokens=32, do_sample=False, guidance_scale=5.0,
        generation_kwargs={"boi_token_id": ids[BOI_TOKEN]},
    )
    model.save_pretrained(out)

    image_processor = JanusImageProcessor(
        size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}, min_size=4,
        image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5],  # the VQ decoder speaks [-1, 1]
    )
    processor = JanusProcessor(image_processor=image_processor, tokenizer=tokenizer,
                               chat_template=CHAT_TEMPLATE, num_image_tokens=num_image_tokens)
    processor.save_pretrained(out)
    return out
