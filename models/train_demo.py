"""Train the demo model: a small LLaVA that has learned the sample data's pixels.

`make demo-model` runs this. It builds the `demo` preset of the tiny LLaVA
(CLIP vision tower, projector, Llama language model, byte-level tokenizer made in
code), then trains it with the ordinary next-token loss on a training split of
`seedbench sample-data` written with its own seed (TRAIN_SEED, never an
evaluation seed). Every example is the chat-rendered question and answer exactly
as the hf backend renders them (`chat_prompt.render` with the model's template,
images preprocessed by the model's own processor); the loss counts the answer's
tokens and the end-of-turn token. Two prompt styles are mixed: `ppl` (question ->
option text) and `letter` (question with the lettered options -> the letter).

Deterministic: fixed seeds, a fixed thread count, deterministic torch kernels
and a fixed number of steps, so a rerun writes the same weights.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import random
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# Idle OpenMP threads sleep instead of spinning (serving/environment.py): on a shared machine
# a spinning thread waits for a descheduled peer, and a step took 15 s instead of 0.07 s.
from serving import environment  # noqa: E402

environment.apply()

import torch  # noqa: E402
from PIL import Image  # noqa: E402

from evaluator.data import dataset, sample_data  # noqa: E402
from evaluator.data.benchmarks import GENERATION_DIMS  # noqa: E402
from evaluator.data.media import parse_media_roots  # noqa: E402
from evaluator.run import methods  # noqa: E402
from model_server.backends.chat_prompt import common_prefix_len, render  # noqa: E402
from model_server.tiny import make_llava  # noqa: E402

TRAIN_SEED = sample_data.DEMO_TRAIN_SEED  # the training split's seed; evaluations use others
MODEL_SEED = 0      # initial weights
SHUFFLE_SEED = 0    # batch order
IGNORE = -100


@dataclass
class Example:
    input_ids: list[int]   # image tokens already expanded, as the processor does
    labels: list[int]      # IGNORE except the answer and its end-of-turn token
    images: list[str]      # image file paths, in prompt order
    first_style: bool = True  # ppl style (the option's text), not letter


def load_image(path: str) -> Image.Image:
    """As the server sees it: the file's bytes decoded, converted to RGB."""
    with Image.open(path) as im:
        im.load()
        return im.convert("RGB")


class Encoder:
    """Renders and tokenises one (prompt, answer) pair the way the hf backend does."""

    def __init__(self, processor):
        self.processor = processor
        self.tok = processor.tokenizer
        self.image_token = processor.image_token
        probe = processor(text=[self.image_token], images=[Image.new("RGB", (8, 8))])
        self.per_image = probe["input_ids"][0].count(self.tok.convert_tokens_to_ids(self.image_token))

    def _template(self, msgs, **kw) -> str:
        return self.processor.apply_chat_template(msgs, tokenize=False, **kw)

    def _ids(self, text: str) -> list[int]:
        expanded = text.replace(self.image_token, self.image_token * self.per_image)
        return self.tok(expanded)["input_ids"]

    def example(self, text: str, answer: str, images: list[str]) -> Example:
        r = render(self._template, text, len(images), answer)
        prompt_ids, full_ids = self._ids(r.prompt), self._ids(r.full)
        begin = common_prefix_len(prompt_ids, full_ids)
        end = common_prefix_len(self._ids(r.answer_end), full_ids) + 1  # the answer + end of turn
        labels = [IGNORE] * len(full_ids)
        labels[begin:end] = full_ids[begin:end]
        return Example(full_ids, labels, images)

    def check(self, ex: Example, text: str, answer: str) -> None:
        """The expansion above must equal the processor's own (what the server runs)."""
        full = render(self._template, text, len(ex.images), answer).full
        enc = self.processor(text=[full], images=[load_image(p) for p in ex.images] or None,
                             return_tensors="pt")
        if enc["input_ids"][0].tolist() != ex.input_ids:
            raise RuntimeError(f"training tokens differ from the processor's for {text!r}")


def build_examples(data: Path, encoder: Encoder, styles: tuple[str, ...],
                   letter_every: int = 1) -> list[Example]:
    ann = data / sample_data.V2_FILE
    roots = parse_media_roots([f"cc3m={data / 'cc3m'}", f"SEED-Bench v2={data / 'seed_bench_v2'}"])
    ds = dataset.load(ann, roots)
    out: list[Example] = []
    checked: set[tuple[int, str]] = set()
    for q in ds.questions:
        if q.dimension in GENERATION_DIMS:
            continue
        right = q.choices["ABCD".index(q.answer)]
        images = [str(p) for p in q.images]
        for k, style in enumerate(styles):
            if k and q.index % letter_every:  # the first style for every question, others thinner
                continue
            prompt = methods.build(q, style)
            answer = q.answer if style == "letter" else right
            ex = encoder.example(prompt.text, answer, images)
            ex.first_style = k == 0
            if (q.dimension, style) not in checked:
                encoder.check(ex, prompt.text, answer)
                checked.add((q.dimension, style))
            out.append(ex)
    return out


class PixelCache:
    """Each distinct image file preprocessed once by the model's image processor."""

    def __init__(self, image_processor):
        self.image_processor = image_processor
        self.cache: dict[str, torch.Tensor] = {}

    def __call__(self, path: str) -> torch.Tensor:
        if path not in self.cache:
            self.cache[path] = self.image_processor(images=[load_image(path)],
                                                    return_tensors="pt")["pixel_values"][0]
        return self.cache[path]


def batches(examples: list[Example], batch_size: int, steps: int, seed: int, warm_steps: int = 0):
    """`steps` batches; each from one bucket (same image count and similar length).

    The first `warm_steps` draw only from single-image examples of the first style:
    from scratch, the full mixture sat at the answer prior (the loss of guessing
    among the options without looking) for 1000+ steps, while single-image
    colour and shape questions teach the language model to read the image tokens
    within ~100 steps; everything else then builds on that.
    """
    def bucketed(members):
        out: dict[tuple[int, int], list[int]] = {}
        for i in members:
            ex = examples[i]
            out.setdefault((len(ex.images), len(ex.input_ids) // 32), []).append(i)
        return out

    everything = bucketed(range(len(examples)))
    warm = bucketed([i for i, ex in enumerate(examples) if len(ex.images) == 1 and ex.first_style])
    rng = random.Random(seed)
    for step in range(steps):
        buckets = warm if step < warm_steps else everything
        keys = sorted(buckets)
        members = buckets[rng.choices(keys, [len(buckets[k]) for k in keys])[0]]
        yield [examples[i] for i in rng.sample(members, min(batch_size, len(members)))]


def collate(batch: list[Example], pixels: PixelCache, pad_id: int) -> dict[str, torch.Tensor]:
    width = max(len(ex.input_ids) for ex in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for r, ex in enumerate(batch):
        n = len(ex.input_ids)
        ids[r, :n] = torch.tensor(ex.input_ids)
        labels[r, :n] = torch.tensor(ex.labels)
        mask[r, :n] = 1
    out = {"input_ids": ids, "attention_mask": mask, "labels": labels}
    images = [pixels(p) for ex in batch for p in ex.images]
    if images:
        out["pixel_values"] = torch.stack(images)
    return out


def weights_digest(model) -> str:
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().contiguous().numpy().tobytes())
    return h.hexdigest()


def train(out: Path, *, steps: int, per_dim: int, batch_size: int = 16, lr: float = 1e-3,
          threads: int = 2, styles: tuple[str, ...] = ("ppl", "letter"), letter_every: int = 3,
          warm_steps: int = 300, log_every: int = 50,
          work: Path | None = None) -> dict:
    """Build, train and save the model in `out`; returns a summary (also saved as JSON)."""
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(MODEL_SEED)
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(dir=work) as tmp:
        data = Path(tmp) / "data"
        sample_data.write_v2(data, seed=TRAIN_SEED, per_dim=per_dim)
        init = make_llava(Path(tmp) / "init", seed=MODEL_SEED, preset="demo")
        from transformers import AutoProcessor, LlavaForConditionalGeneration

        processor = AutoProcessor.from_pretrained(init)
        model = LlavaForConditionalGeneration.from_pretrained(init, dtype=torch.float32)
        encoder = Encoder(processor)
        examples = build_examples(data, encoder, styles, letter_every)
        pixels = PixelCache(processor.image_processor)
        pad_id = processor.tokenizer.pad_token_id
        params = sum(p.numel() for p in model.parameters())
        print(f"{len(examples)} examples, {params / 1e6:.2f}M parameters, "
              f"setup {time.monotonic() - t0:.1f}s", file=sys.stderr, flush=True)
        opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
        warmup = max(1, steps // 20)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warmup) * max(
            0.05, 0.5 * (1 + math.cos(math.pi * s / steps))))
        model.train()
        t1 = time.monotonic()
        running = None
        for step, batch in enumerate(batches(examples, batch_size, steps, SHUFFLE_SEED, warm_steps), 1):
            loss = model(**collate(batch, pixels, pad_id)).loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            running = loss.item() if running is None else 0.95 * running + 0.05 * loss.item()
            if step % log_every == 0 or step == steps:
                print(f"step {step}/{steps} loss {running:.4f} "
                      f"({time.monotonic() - t1:.0f}s)", file=sys.stderr, flush=True)
        model.eval()
        train_s = time.monotonic() - t1
        # Written only now, so an interrupted run never leaves a half-trained model in `out`;
        # config, tokenizer and processor files as the model maker wrote them.
        out.mkdir(parents=True, exist_ok=True)
        for f in init.iterdir():
            if f.is_file() and f.suffix != ".safetensors" and f.name != "TINY_MODEL.json":
                shutil.copyfile(f, out / f.name)
        model.save_pretrained(out)
    summary = {
        "note": "trained on seedbench sample-data (synthetic shapes); a demo, not a real model",
        "architecture": model.config.architectures, "parameters": params,
        "train_seed": TRAIN_SEED, "model_seed": MODEL_SEED, "shuffle_seed": SHUFFLE_SEED,
        "per_dim": per_dim, "examples": len(examples), "styles": list(styles),
        "letter_every": letter_every, "steps": steps, "warm_steps": warm_steps,
        "batch_size": batch_size, "lr": lr, "threads": threads,
        "final_loss": round(running, 4), "train_wall_s": round(train_s, 1),
        "total_wall_s": round(time.monotonic() - t0, 1),
        "weights_sha256": weights_digest(model),
        "torch": torch.__version__,
    }
    (out / "TINY_MODEL.json").write_text(json.dumps(summary, indent=1) + "\n")
    return summary


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=str(ROOT / "models" / "demo-llava"))
    p.add_argument("--steps", type=int, default=2500)
    p.add_argument("--per-dim", type=int, default=300, help="training questions per dimension")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--letter-every", type=int, default=3,
                   help="a letter-style example for every Nth question (all get a ppl-style one)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--warm-steps", type=int, default=300,
                   help="first steps on single-image questions only (see batches())")
    p.add_argument("--log-every", type=int, default=50)
    args = p.parse_args(argv)
    summary = train(Path(args.out), steps=args.steps, per_dim=args.per_dim,
                    batch_size=args.batch_size, lr=args.lr, threads=args.threads,
                    letter_every=args.letter_every, warm_steps=args.warm_steps,
                    log_every=args.log_every)
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
