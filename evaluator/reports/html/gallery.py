"""The L3 gallery: for a seeded sample of answered L3 questions, the generated image, the
option images and the CLIP pick, embedded as small PNG data URIs."""

from __future__ import annotations

import base64
import io
import random
from pathlib import Path

from PIL import Image

from evaluator.data.annotation_file import AnnotationError, read_questions
from evaluator.data.image_source import ImageSource, locate
from evaluator.reports.compare import Comparison
from evaluator.reports.compare_types import L3Answer
from evaluator.reports.html.style import esc

GALLERY_PER_DIM = 2
THUMB = 128


def data_uri(source: ImageSource, size: int = THUMB) -> str | None:
    """A small PNG thumbnail of an image (a file, or a snapshot's embedded image) as a data
    URI (None if it cannot be read)."""
    try:
        with Image.open(io.BytesIO(source.read_bytes())) as im:
            im = im.convert("RGB")
            im.thumbnail((size, size))
            buf = io.BytesIO()
            im.save(buf, format="PNG", optimize=True)
    except Exception:  # noqa: BLE001 - a missing or unreadable image is shown as missing
        return None
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def question_texts(annotations: str | None, wanted: set[str]) -> dict[str, str]:
    """Question texts from the run's annotations (JSON or snapshot), if they can still be read."""
    if not annotations or not wanted:
        return {}
    try:
        items = read_questions(Path(annotations))
    except AnnotationError:
        return {}
    return {str(q.get("question_id")): str(q.get("question", "")) for q in items
            if isinstance(q, dict) and str(q.get("question_id")) in wanted}


def _figure(uri: str | None, caption: str, cls: str = "") -> str:
    img = f'<img src="{uri}" alt="{esc(caption)}">' if uri else "<div>(missing)</div>"
    return f'<figure class="{cls}">{img}<figcaption>{esc(caption)}</figcaption></figure>'


def gallery_sample(l3: dict[str, L3Answer], per_dim: int = GALLERY_PER_DIM,
                   seed: int = 0) -> list[str]:
    """A seeded sample of answered L3 questions, `per_dim` from each of their dimensions."""
    rng = random.Random(seed)
    out = []
    for d in sorted({a.dimension for a in l3.values()}):
        ids = sorted(q for q, a in l3.items() if a.dimension == d)
        out += sorted(rng.sample(ids, min(per_dim, len(ids))))
    return out


def _item(q: str, a: L3Answer, run_dir: Path, text: str, dim_name: str) -> str:
    sc = a.evidence or {}
    gen = sc.get("generated")
    figs = [_figure(data_uri(locate(p)), f"input {k + 1}", "input")
            for k, p in enumerate(sc.get("question_images") or [])]
    if gen:
        figs.append(_figure(data_uri(run_dir / gen["file"]), "generated", "gen"))
    sims = sc.get("similarities") or []
    for k, p in enumerate(sc.get("option_images") or []):
        letter = "ABCD"[k]
        cls = " ".join(c for c, on in (("pick", sc.get("image_prediction") == letter),
                                       ("gt", a.answer == letter)) if on)
        sim = f" {sims[k]:.3f}" if k < len(sims) else ""
        mark = " ✓" if a.answer == letter else ""
        figs.append(_figure(data_uri(locate(p)), f"{letter}{mark}{sim}", cls))
    if not sc.get("option_images"):
        figs.append("<div><small>option images not recorded with this answer</small></div>")
    verdict = "correct" if a.prediction == a.answer else "wrong"
    why = ""
    if a.dimension == 27 and not gen:
        why = (f" - text answer {esc(sc.get('text_prediction'))} wrong, so no image was "
               "generated")
    return (f'<div class="item" data-question="{esc(q)}"><div><b>{esc(q)}</b> '
            f'<small>dim {a.dimension} {esc(dim_name)}</small></div>'
            f'<div class="sub">{esc(text)}</div>'
            f'<div class="imgs">{"".join(figs)}</div>'
            f'<div><small>CLIP pick: {esc(sc.get("image_prediction") or "-")}, answer '
            f'{esc(a.answer)}, prediction {esc(a.prediction)} ({verdict}){why}. '
            "Red border: CLIP pick; ✓: ground truth; numbers: cosine similarity to the "
            "generated image.</small></div></div>")


def gallery(c: Comparison) -> str:
    out = []
    for r in c.runs:
        answers = r.l3
        sample = gallery_sample(answers)
        if not sample:
            continue
        texts = question_texts(r.summary.annotations, set(sample))
        out.append(f"<h3>{esc(r.label)}</h3><div class=\"gallery\">")
        for q in sample:
            dim = r.summary.dimensions.get(answers[q].dimension)
            out.append(_item(q, answers[q], r.dir, texts.get(q, ""), dim.name if dim else ""))
        out.append("</div>")
    return "".join(out)
