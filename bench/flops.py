"""Model FLOPs of one question and the device's peak: the numbers behind MFU.

Counted for the work a question needs when every option follows the prefix once
(what packed and cache-copy scoring do): the vision tower per image, the projector
per image token, the language model over the prefix once plus each option's
tokens, attention over the context each token actually sees, and the output head
at the scored positions. A multiply-add is 2 FLOPs. The reference method does
about `options` times the language-model work; its MFU row uses the same useful
FLOPs, so it shows how far it is from the hardware for the same answers.
"""

from __future__ import annotations

# Dense bf16 peak (no sparsity), FLOP/s, by a name fragment of the device.
PEAK_BF16 = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "A10G": 70e12}


# Peak memory bandwidth (HBM, as specified), bytes/s, by a name fragment of the device.
PEAK_BANDWIDTH = {"H200": 4.8e12, "H100": 3.35e12, "A100": 2.04e12, "L40S": 0.864e12,
                  "A10G": 0.6e12}


def peak_flops(device_name: str) -> float | None:
    return next((v for k, v in PEAK_BF16.items() if k in device_name), None)


def peak_bandwidth(device_name: str) -> float | None:
    return next((v for k, v in PEAK_BANDWIDTH.items() if k in device_name), None)


def _bytes(module) -> int:
    return sum(p.numel() * p.element_size() for p in module.parameters())


def decode_bytes(model) -> tuple[int, int]:
    """What one decode step must read from memory: the language model's weights (every
    layer and the output head; of the embedding table only the rows looked up, left out)
    once per step whatever the batch, and per cached token of every row its keys and
    values in every layer."""
    lm = model.model.language_model
    weights = _bytes(lm) - _bytes(lm.embed_tokens) + _bytes(model.get_output_embeddings())
    text = model.config.get_text_config()
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads
    element = next(model.parameters()).element_size()
    return weights, 2 * text.num_hidden_layers * text.num_key_value_heads * head_dim * element


def _params(module) -> int:
    return sum(p.numel() for p in module.parameters())


class FlopCounter:
    """Per-question FLOPs for a LLaVA-style model (vision tower, projector, decoder)."""

    def __init__(self, model):
        inner = model.model
        text = model.config.text_config
        self.d_text = text.hidden_size
        self.layers = text.num_hidden_layers
        lm = inner.language_model
        self.lm_matmul = _params(lm) - _params(lm.embed_tokens) - _params(lm.norm)
        self.head = _params(model.get_output_embeddings())
        self.vision = _params(inner.vision_tower) if hasattr(inner, "vision_tower") else 0
        self.projector = _params(inner.multi_modal_projector) if hasattr(
            inner, "multi_modal_projector") else 0
        vc = getattr(model.config, "vision_config", None)
        if vc is not None and hasattr(vc, "image_size"):
            self.vision_tokens = (vc.image_size // vc.patch_size) ** 2 + 1
            self.d_vision, self.vision_layers = vc.hidden_size, vc.num_hidden_layers
        else:
            self.vision_tokens = self.d_vision = self.vision_layers = 0

    def question(self, prefix_len: int, option_lens: list[int], scored: int, images: int,
                 image_tokens: int) -> float:
        tokens = prefix_len + sum(option_lens)
        flops = 2.0 * self.lm_matmul * tokens + 2.0 * self.head * scored
        # attention: QK^T and AV, 4*d FLOPs per (query, visible key) pair per layer
        pairs = prefix_len * (prefix_len + 1) / 2
        pairs += sum(m * prefix_len + m * (m + 1) / 2 for m in option_lens)
        flops += 4.0 * self.d_text * self.layers * pairs
        v = self.vision_tokens
        flops += images * (2.0 * self.vision * v + 4.0 * self.d_vision * self.vision_layers * v * v)
        flops += 2.0 * self.projector * image_tokens
        return flops
