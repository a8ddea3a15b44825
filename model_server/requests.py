"""Turn protobuf requests into backend tasks, refusing bad input by field name.

Structure checks are cheap and run on the event loop; image decoding runs in
the caller's worker thread (see decode_images) so large images never stall it.
"""

from __future__ import annotations

import hashlib

from PIL import Image

from model_server.backends.base import BackendInfo, GenerateImageTask, GenerateTask, ScoreTask
from model_server.backends.score_recipe import check_supported, recipe_of
from protos import seedbench_pb2 as pb
from serving.errors import InvalidRequest, TooLarge
from serving.images import PLACEHOLDER, decode_image

MAX_OPTIONS = 64
DEFAULT_NEW_TOKENS = 32  # Generate's max_new_tokens when a request sends 0


def check_prompt(prompt: pb.Prompt, max_images: int) -> None:
    """The one place a prompt is checked, max_images included: backends rely on it."""
    if not prompt.text.strip():
        raise InvalidRequest("prompt.text", "is empty")
    n = len(prompt.images)
    if n > max_images:
        raise TooLarge(f"prompt.images: {n} images, this model accepts at most {max_images}")
    k = prompt.text.count(PLACEHOLDER)
    if k and k != n:
        raise InvalidRequest(
            "prompt.text", f"has {k} {PLACEHOLDER} placeholders but {n} images were sent"
        )
    for i, im in enumerate(prompt.images):
        if not im.data:
            raise InvalidRequest(f"prompt.images[{i}].data", "is empty")
        if im.sha256 and hashlib.sha256(im.data).hexdigest() != im.sha256.lower():
            raise InvalidRequest(f"prompt.images[{i}].sha256", "does not match the image bytes")


def check_max_new_tokens(value: int, cap: int) -> None:
    """0 means the server default (proto3 cannot tell unset from 0); else 1..cap."""
    if value < 0:
        raise InvalidRequest("max_new_tokens", f"is {value}; send 1 to {cap}, or 0 for the default")
    if value > cap:
        raise TooLarge(f"max_new_tokens: {value} is over this server's limit of {cap} "
                       "(--max-new-tokens)")


def image_hashes(prompt: pb.Prompt) -> list[str]:
    return [im.sha256.lower() or hashlib.sha256(im.data).hexdigest() for im in prompt.images]


# File signatures of the image formats the benchmark ships (and PIL decodes).
_SIGNATURES = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"BM",
               b"II*\x00", b"MM\x00*")


def looks_like_image(data: bytes) -> bool:
    return data.startswith(_SIGNATURES) or (data[:4] == b"RIFF" and data[8:12] == b"WEBP")


def check_image_headers(prompt: pb.Prompt) -> None:
    """Recognise each image's file format by its signature, without parsing or decoding.

    For backends that never look at pixels; a microsecond instead of PIL's
    header parse, which dominated a no-op server's per-call cost.
    """
    for i, im in enumerate(prompt.images):
        if not looks_like_image(im.data):
            raise InvalidRequest(f"prompt.images[{i}]", "cannot be decoded as an image "
                                 "(not a PNG, JPEG, GIF, BMP, TIFF or WebP file)")


def decode_images(prompt: pb.Prompt) -> list[Image.Image]:
    return [decode_image(im.data, f"prompt.images[{i}]") for i, im in enumerate(prompt.images)]


def check_score(req: pb.ScoreRequest, info: BackendInfo) -> None:
    """Structure, limits and the recipe fields against what the backend offers."""
    check_prompt(req.prompt, info.max_images)
    if not req.options:
        raise InvalidRequest("options", "is empty; send at least one answer option")
    if len(req.options) > MAX_OPTIONS:
        raise TooLarge(f"options: {len(req.options)} options, at most {MAX_OPTIONS}")
    for i, opt in enumerate(req.options):
        if not opt.strip():
            raise InvalidRequest(f"options[{i}]", "is empty")
    recipe, prep = recipe_of(req)
    check_supported(req, recipe, prep, info.score_features)


def score_task(req: pb.ScoreRequest, decode: bool = True) -> ScoreTask:
    recipe, prep = recipe_of(req)  # checked by check_score; cheap to read again
    if decode:
        images = decode_images(req.prompt)
    else:
        check_image_headers(req.prompt)
        images = []
    return ScoreTask(
        request_id=req.request_id, text=req.prompt.text, images=images,
        options=list(req.options), include_end_of_turn=req.include_end_of_turn,
        raw_prompt=req.raw_prompt, image_sha256=image_hashes(req.prompt),
        recipe=recipe, image_prep=prep,
    )


def generate_task(req: pb.GenerateRequest) -> GenerateTask:
    return GenerateTask(
        request_id=req.request_id, text=req.prompt.text, images=decode_images(req.prompt),
        max_new_tokens=req.max_new_tokens or DEFAULT_NEW_TOKENS, temperature=req.temperature,
        seed=req.seed,
    )


def generate_image_task(req: pb.GenerateImageRequest) -> GenerateImageTask:
    return GenerateImageTask(
        request_id=req.request_id, text=req.prompt.text, images=decode_images(req.prompt),
        seed=req.seed, with_text=req.with_text,
        max_new_tokens=req.max_new_tokens or DEFAULT_NEW_TOKENS,
    )
