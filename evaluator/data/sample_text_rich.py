"""A small synthetic SEED-Bench-2-Plus: text-rich 800x800 PNGs and questions they answer.

Layout written under OUT, as the benchmark publishes it:
  OUT/SEED-Bench-2-plus-text-rich.json   {"questions": [...]} with the published fields
  OUT/text_rich/N.png                    charts, maps and web pages drawn with PIL
Run with a bare `--media-root OUT` (data_id is "text_rich/N.png", relative to it).

Each image carries the text its question asks about: a bar or pie chart with
labelled values, a city or subway map with named places, a shopping or news
page with names and prices or headlines. Everything is a function of the seed.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from evaluator.data.benchmarks import SEED_BENCH_2_PLUS as PLUS
from serving.atomic_files import write_atomic

SIZE = 800
IMAGE_DIR = "text_rich"
WORDS = ("Apple", "Birch", "Cedar", "Delta", "Ember", "Fjord", "Grove", "Harbor", "Iris",
         "Jade", "Kestrel", "Lumen", "Maple", "Nova", "Orchid", "Pine")
SUBTYPES = {"chart": ("bar chart", "pie chart"), "map": ("city map", "subway map"),
            "web": ("shopping page", "news page")}
PALETTE = ((66, 133, 244), (219, 68, 55), (244, 180, 0), (15, 157, 88), (171, 71, 188))


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except (AttributeError, ImportError, OSError):  # Pillow without FreeType: the bitmap font
        return ImageFont.load_default()


def _options(rng: random.Random, right: str, pool: list[str]) -> tuple[list[str], str]:
    wrong = rng.sample([x for x in pool if x != right], 3)
    k = rng.randrange(4)
    return wrong[:k] + [right] + wrong[k:], "ABCD"[k]


def _canvas(title: str) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    im = Image.new("RGB", (SIZE, SIZE), "white")
    d = ImageDraw.Draw(im)
    d.text((40, 30), title, fill="black", font=_font(36))
    return im, d


def _chart(rng: random.Random, subtype: str):
    names = rng.sample(WORDS, 5)
    values = rng.sample(range(10, 95), 5)
    im, d = _canvas(f"{subtype.title()}: sales by store")
    if subtype == "bar chart":
        for k, (name, value) in enumerate(zip(names, values, strict=True)):
            x = 80 + k * 140
            d.rectangle((x, 700 - value * 6, x + 90, 700), fill=PALETTE[k])
            d.text((x, 710), name, fill="black", font=_font(24))
            d.text((x + 10, 660 - value * 6), str(value), fill="black", font=_font(28))
    else:
        start = 0.0
        for k, (name, value) in enumerate(zip(names, values, strict=True)):
            sweep = 360.0 * value / sum(values)
            d.pieslice((150, 150, 550, 550), start, start + sweep, fill=PALETTE[k])
            start += sweep
            d.rectangle((600, 200 + k * 60, 630, 230 + k * 60), fill=PALETTE[k])
            d.text((640, 200 + k * 60), f"{name} {value}", fill="black", font=_font(26))
    if rng.random() < 0.5:
        best = names[values.index(max(values))]
        opts, ans = _options(rng, best, list(names))
        text = f"According to the {subtype}, which store has the highest sales?"
    else:
        k = rng.randrange(5)
        opts, ans = _options(rng, str(values[k]), [str(v) for v in range(10, 95)])
        text = f"What sales value does the {subtype} show for {names[k]}?"
    return im, text, opts, ans


def _map(rng: random.Random, subtype: str):
    places = rng.sample(WORDS, 9)
    suffix = " Station" if subtype == "subway map" else " Square"
    im, d = _canvas(f"{subtype.title()} of Westhaven")
    for k, place in enumerate(places):
        col, row = k % 3, k // 3
        x, y = 130 + col * 240, 200 + row * 200
        if subtype == "subway map" and col < 2:
            d.line((x, y, x + 240, y), fill=PALETTE[row], width=8)
        d.ellipse((x - 16, y - 16, x + 16, y + 16), fill=PALETTE[(row + col) % 5])
        d.text((x - 60, y + 24), place + suffix, fill="black", font=_font(22))
    k = rng.randrange(8)
    if k % 3 == 2:
        k -= 1
    right = places[k + 1] + suffix
    opts, ans = _options(rng, right, [p + suffix for p in places if p != places[k]])
    return im, f"On the {subtype}, which place is directly east of {places[k]}{suffix}?", opts, ans


def _web(rng: random.Random, subtype: str):
    names = rng.sample(WORDS, 4)
    im, d = _canvas("Westhaven Market" if subtype == "shopping page" else "Westhaven Daily")
    d.rectangle((0, 90, SIZE, 130), fill=(230, 230, 230))
    d.text((40, 96), "Home   Deals   Help   Sign in", fill="black", font=_font(24))
    if subtype == "shopping page":
        prices = [f"${p}.99" for p in rng.sample(range(5, 90), 4)]
        for k, (name, price) in enumerate(zip(names, prices, strict=True)):
            x, y = 40 + (k % 2) * 380, 170 + (k // 2) * 300
            d.rectangle((x, y, x + 340, y + 260), outline="black", width=3)
            d.text((x + 20, y + 150), f"{name} lamp", fill="black", font=_font(30))
            d.text((x + 20, y + 200), price, fill=PALETTE[1], font=_font(30))
        k = rng.randrange(4)
        opts, ans = _options(rng, prices[k], [f"${p}.99" for p in range(5, 90)])
        return im, f"What is the price of the {names[k]} lamp on this page?", opts, ans
    heads = [f"{n} council opens new {w}" for n, w in
             zip(names, rng.sample(("park", "bridge", "library", "market"), 4), strict=True)]
    for k, head in enumerate(heads):
        d.text((40, 180 + k * 140), head, fill="black", font=_font(30))
        d.text((40, 225 + k * 140), "Read more >", fill=PALETTE[0], font=_font(22))
    opts, ans = _options(rng, heads[0], heads + [f"{w} council closes {w.lower()} road"
                                                 for w in WORDS[:4]])
    return im, "Which headline is shown at the top of the news page?", opts, ans


DRAW = {"chart": _chart, "map": _map, "web": _web}


def write(out: str | Path, seed: int = 0, per_dim: int = 3) -> Path:
    """`per_dim` questions per category (chart, map, web), subtypes alternating."""
    out = Path(out)
    (out / IMAGE_DIR).mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    questions = []
    for category in PLUS.categories:
        for i in range(per_dim):
            subtype = SUBTYPES[category][i % 2]
            im, text, opts, ans = DRAW[category](rng, subtype)
            n = len(questions) + 1
            im.save(out / IMAGE_DIR / f"{n}.png", format="PNG")
            questions.append({
                "question_id": str(n - 1), "question": text,
                "choice_A": opts[0], "choice_B": opts[1], "choice_C": opts[2], "choice_D": opts[3],
                "answer": ans, "data_id": f"{IMAGE_DIR}/{n}.png", "question_image_type": category,
                "question_image_subtype": subtype, "data_source": "SEED-Bench v2 plus",
                "data_type": "Single Image", "level": "L1",
                "subpart": "Single-Image & Text Comprehension", "version": "v2+"})
    return write_atomic(out / PLUS.file_name, json.dumps({"questions": questions}, indent=1) + "\n")
