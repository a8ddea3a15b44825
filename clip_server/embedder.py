"""The open_clip model behind the CLIP server: load, fingerprint, embed, cache.

No source names the CLIP variant SEED-Bench used for L3, so the variant is a
setting (open_clip model name + local checkpoint) and the fingerprint of the
loaded weights travels with every result. `tiny` is a small config shipped here,
created from a fixed seed, so every process (server, test, replica) holds the
same weights without any download.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import warnings
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from serving import environment

environment.apply()  # before open_clip and torch are imported: they read these once

import open_clip  # noqa: E402
import torch  # noqa: E402

if TYPE_CHECKING:
    from PIL import Image


log = logging.getLogger(__name__)
CONFIG_DIR = Path(__file__).resolve().parent / "configs"
TINY_ALIAS = "tiny"
TINY_MODEL = "seedbench-tiny-clip"
INIT_SEED = 0  # weights of a model without a checkpoint (tiny) come from this seed

open_clip.add_model_config(CONFIG_DIR)


def resolve_name(model: str) -> str:
    return TINY_MODEL if model == TINY_ALIAS else model


def create(model: str, checkpoint: str = "", device: str = "cpu"):
    """(model, preprocess, tokenizer), built exactly as every process must build them."""
    name = resolve_name(model)
    if checkpoint and not Path(checkpoint).is_file():
        raise FileNotFoundError(f"checkpoint {checkpoint!r} is not a local file")
    torch.manual_seed(INIT_SEED)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clip, _, preprocess = open_clip.create_model_and_transforms(
            name, pretrained=checkpoint or None, device=device)
    clip.eval()
    return clip, preprocess, open_clip.get_tokenizer(name)


def state_dict_fingerprint(module: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for key, tensor in sorted(module.state_dict().items()):
        h.update(key.encode())
        h.update(str(tensor.dtype).encode())
        h.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


class LRUCache:
    """Embeddings by image sha256; shared by the event loop and the device thread."""

    def __init__(self, capacity: int):
        self.capacity = max(0, capacity)
        self._items: OrderedDict[str, list[float]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> list[float] | None:
        with self._lock:
            value = self._items.get(key)
            if value is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return value

    def put(self, key: str, value: list[float]) -> None:
        if not self.capacity:
            return
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


class ClipEmbedder:
    def __init__(self, model: str, checkpoint: str = "", device: str = "", cache_size: int = 4096):
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model_name = model
        self.checkpoint = checkpoint
        self.model, self.preprocess, self.tokenizer = create(model, checkpoint, str(self.device))
        if not checkpoint:
            log.warning("no --checkpoint: %s has seeded random weights (seed %d)",
                        resolve_name(model), INIT_SEED)
        self.fingerprint = state_dict_fingerprint(self.model)
        self.image_size = getattr(self.model.visual, "image_size", "")
        self.cache = LRUCache(cache_size)
        self.embed_dim = len(self.embed_texts(["a photo"])[0])  # also warms the model up

    def prepare(self, img: Image.Image) -> torch.Tensor:
        """CPU preprocessing (resize, crop, normalise); run outside the device thread."""
        return self.preprocess(img)

    @torch.no_grad()
    def embed_pixels(self, pixels: Sequence[torch.Tensor]) -> list[list[float]]:
        """One device batch of preprocessed images -> L2-normalised embeddings."""
        batch = torch.stack(list(pixels)).to(self.device)
        feats = self.model.encode_image(batch, normalize=True).float().cpu()
        return feats.tolist()

    @torch.no_grad()
    def embed_texts(self, texts: Sequence[str]) -> list[list[float]]:
        tokens = self.tokenizer(list(texts)).to(self.device)
        feats = self.model.encode_text(tokens, normalize=True).float().cpu()
        return feats.tolist()
