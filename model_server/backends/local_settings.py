"""Settings of the torch backends (hf, janus), declared torch-free so they are checked
and listed before torch loads."""

from __future__ import annotations

from dataclasses import dataclass

from model_server.backends.settings import Device, Dtype, setting


@dataclass(frozen=True)
class HFSettings:
    device: Device = setting("", "cpu, cuda, cuda:N, or auto to shard over all GPUs (needs "
                                 "accelerate); empty: cuda if available, else cpu (--device)")
    dtype: Dtype = setting("", "float32, bfloat16 or float16; empty: bfloat16 on GPU, else "
                               "float32 (--dtype)")
    prefix_sharing: bool | None = setting(None, "auto, true or false: encode images and question once "
                                          "per question and score all options from its cache")
    packing: bool | None = setting(None, "auto, true or false: score all options of a question in "
                                   "ONE packed forward (4-D mask) rather than from copies of the "
                                   "prefix cache; auto: LLaVA and Qwen2-VL on accelerators")
    max_images: int = setting(16, "images per prompt the server accepts")
    threads: int = setting(0, "CPU threads for torch in this process; 0: torch's default")
    max_batch_tokens: int = setting(65536, "rows x tokens of one forward: bounds device memory")
    prepare_ahead: bool | None = setting(None, "auto, true or false: chat template, tokens and image "
                                         "preprocessing in worker threads; auto: on accelerators")
    preprocess_on_device: bool | None = setting(None, "auto, true or false: resize and normalise "
                                                "images on the model's device (torchvision image "
                                                "processors); auto: on accelerators")
    max_context_tokens: int = setting(0, "admission: prompt tokens (images expanded) + answer or "
                                         "max_new_tokens; 0: the model's max_position_embeddings")
    max_option_tokens: int = setting(16384, "admission: options x the longest option's tokens of "
                                            "one Score request")


@dataclass(frozen=True)
class JanusSettings:
    device: Device = setting("", "cpu, cuda or cuda:N; empty: cuda if available, else cpu "
                                 "(--device)")
    dtype: Dtype = setting("", "float32, bfloat16 or float16; empty: bfloat16 on GPU, else "
                               "float32 (--dtype)")
    cfg_weight: float = setting(5.0, "classifier-free guidance weight for image generation")
    image_temperature: float = setting(1.0, "sampling temperature of image tokens; 0: greedy")
    max_images: int = setting(8, "images per prompt the server accepts")
    max_batch_tokens: int = setting(65536, "rows x tokens of one forward: bounds device memory")
    max_context_tokens: int = setting(0, "admission: prompt tokens (images expanded) + answer, "
                                         "max_new_tokens or the generated image's tokens; 0: the "
                                         "language model's max_position_embeddings")
    max_option_tokens: int = setting(16384, "admission: options x the longest option's tokens of "
                                            "one Score request")
