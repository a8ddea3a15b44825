"""Load annotations (SEED-Bench-1, -2, -2-Plus; JSON or a parquet snapshot), apply the
official filters, validate early.

Every bad question is reported at once (file, question id, field, reason) and
skipped; the good ones run. Media is only located and checked here, never kept
in memory: the runner reads it lazily. A snapshot's embedded images are
counted here and read (and checked to decode) when their question is sent:
checking 38 GB up front would read the whole snapshot before the first question.
What a benchmark is (fields, dimensions, media rules, filters) comes from its
definition (evaluator.data.benchmarks).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

from evaluator.data import annotation_file as AF
from evaluator.data import benchmarks as B
from evaluator.data import question as QP
from evaluator.data.annotation_file import AnnotationError
from evaluator.data.benchmarks import Benchmark
from evaluator.data.embedded_images import EmbeddedImage
from evaluator.data.media import MediaError, check_image, frame_files, root_for, safe_join
from evaluator.data.question import LETTERS, Invalid, Question
from evaluator.data.video_frames import VideoClip
from evaluator.data.video_sources import VideoSources
from serving.images import PLACEHOLDER

EMBEDDED_FRAMES = "frames embedded in the snapshot"


@dataclass(frozen=True)
class Filters:
    level: str | None = None
    version: str | None = None
    subpart: str | None = None
    dimensions: frozenset[int] | None = None
    limit: int | None = None

    def as_dict(self) -> dict:
        return {"level": self.level, "version": self.version, "subpart": self.subpart,
                "dimensions": sorted(self.dimensions) if self.dimensions else None,
                "limit": self.limit}


@dataclass
class Dataset:
    benchmark: str
    file: str
    questions: list[Question]  # valid and selected, in file order
    invalid: list[Invalid]  # every problem found (a question may have several)
    warnings: list[str] = field(default_factory=list)  # ignored content, misfit questions
    video_sources: dict[int, str] = field(default_factory=dict)  # SEED-Bench-1 dim -> source
    source: dict = field(default_factory=dict)  # what was read: the file, or the snapshot's shards
    # What identifies the file's version (evaluator.data.provenance): its sha256 (a snapshot:
    # of its shard list), how many questions it holds (valid or not, selected or not) and
    # its question_type map.
    sha256: str = ""
    file_questions: int = 0
    question_type: object = None

    @property
    def definition(self) -> Benchmark:
        return B.get(self.benchmark)

    @property
    def rejected(self) -> int:
        """How many questions were skipped as invalid."""
        return len({(x.position, x.question_id) for x in self.invalid})


__all__ = ["LETTERS", "AnnotationError", "Dataset", "Filters", "Invalid", "Question", "load",
           "parse"]


def select(q: Question, bench: Benchmark, f: Filters) -> bool:
    """Official semantics: cumulative level and version, exact subpart."""
    if f.dimensions and q.dimension not in f.dimensions:
        return False
    if f.level and q.level not in bench.levels.get(f.level, ()):
        return False
    if f.version and q.version not in bench.versions.get(f.version, ()):
        return False
    return not (f.subpart and q.subpart != f.subpart)


def source_key(q: Question, bench: Benchmark) -> str:
    """The media-root key of an image question (SEED-Bench-1 video: see video_sources)."""
    return getattr(q, bench.root_key) if bench.root_key else bench.fixed_root


def resolve_media(q: Question, bench: Benchmark, roots: dict[str, Path]) -> list[Path]:
    """Locate every image of a question under its root; raises MediaError."""
    root = root_for(roots, source_key(q, bench))
    paths: list[Path] = []
    multi = len(q.data_ids) > 1
    for k, rel in enumerate(q.data_ids):
        fld = f"data_id[{k}]" if multi else "data_id"
        p = safe_join(root, rel, fld)
        if p.is_dir():
            paths.extend(_folder_frames(p, fld))
        else:
            check_image(p, fld)
            paths.append(p)
    return paths


def _folder_frames(folder: Path, fld: str) -> list[Path]:
    frames = frame_files(folder)
    if not frames:
        raise MediaError(fld, f"frame folder {folder} holds no images")
    for fr in frames:
        check_image(safe_join(folder, fr.name, fld), fld)  # a frame linked outside is refused
    return frames


def resolve_video(q: Question, videos: VideoSources) -> tuple[list[Path], VideoClip | None]:
    """A SEED-Bench-1 video question: its frame files, or the raw clip to sample at run time."""
    folder, clip = videos.resolve(q.dimension, q.question_id, q.data_ids, q.segment)
    if clip is not None:
        return [], clip
    return _folder_frames(folder, "question_id"), None


def _check_media(q: Question, bench: Benchmark, roots: dict[str, Path], file: str,
                 videos: VideoSources | None = None):
    if q.images:  # embedded in a snapshot: counted at parse, read when sent
        return q, None
    clip = None
    try:
        if q.dimension in bench.video_dims:
            paths, clip = resolve_video(q, videos or VideoSources(roots))
        else:
            paths = resolve_media(q, bench, roots)
    except MediaError as exc:
        return None, Invalid(file, q.question_id, exc.field, exc.reason, q.index)
    except (OSError, ValueError) as exc:  # what the file system refuses is this question's error
        return None, Invalid(file, q.question_id, "data_id", f"cannot be read: {exc}",
                             q.index)
    why = _placeholder_problem(q, bench, len(paths))
    if why:
        return None, Invalid(file, q.question_id, "question", why, q.index)
    return Question(**{**q.__dict__, "images": tuple(paths), "video": clip}), None


def _placeholder_problem(q: Question, bench: Benchmark, images: int) -> str | None:
    n = q.question.count(PLACEHOLDER)
    # L3 questions end data_id with 4 option images; marks may count only the inputs.
    allowed = {images}
    if q.dimension in bench.options_in_images:
        allowed.add(images - 4)
    if n and n not in allowed:
        return f"has {n} {PLACEHOLDER} placeholders but data_id gives {images} images"
    return None


def _embedded_problem(q: Question, bench: Benchmark, images: tuple[EmbeddedImage, ...]
                      ) -> tuple[str, str] | None:
    """(field, reason) when a snapshot row's embedded images do not fit its question."""
    if not images:
        return "image", "holds no embedded image"
    if q.dimension not in bench.video_dims and len(images) != len(q.data_ids):
        return "image", (f"holds {len(images)} embedded image(s) but data_id names "
                         f"{len(q.data_ids)}")
    why = _placeholder_problem(q, bench, len(images))
    return ("question", why) if why else None


def load(path: str | Path, roots: dict[str, Path], filters: Filters = Filters(),
         benchmark: str | None = None, check_workers: int = 8) -> Dataset:
    """Parse, filter, then validate media of the selected questions in a thread pool."""
    ds = parse(path, filters, benchmark)
    bench = ds.definition
    file, parsed, invalid = ds.file, ds.questions, list(ds.invalid)
    embedded = ds.source.get("format") == "parquet"
    videos = VideoSources(roots) if bench.video_dims and not embedded else None
    with ThreadPoolExecutor(check_workers) as pool:
        checked = list(pool.map(lambda q: _check_media(q, bench, roots, file, videos), parsed))
    good = [q for q, err in checked if q is not None]
    invalid.extend(err for _, err in checked if err is not None)
    dims = {q.dimension for q in parsed}
    if embedded:
        sources = {d: EMBEDDED_FRAMES for d in sorted(dims & bench.video_dims)}
    else:
        sources = videos.describe(dims) if videos else {}
    warnings = list(ds.warnings)
    if embedded and roots:
        warnings.append(f"{file}: --media-root not used: the snapshot embeds its images")
    return replace(ds, questions=good, invalid=invalid, warnings=warnings,
                   video_sources=sources)


def parse(path: str | Path, filters: Filters = Filters(),
          benchmark: str | None = None) -> Dataset:
    """Read, check and filter the questions without looking at any media (`load` adds that;
    scoring a predictions file needs only this). `benchmark` (a name or alias) overrides
    the detection."""
    file = str(path)
    doc = AF.load_document(Path(path))
    raw = doc.questions
    ids = [QP.question_id(q, i) for i, q in enumerate(raw)]
    warnings = []
    if benchmark is None:
        bench, misfits = AF.detect(raw, ids)
        for other, where in misfits.items():
            warnings.append(f"{file}: read as {bench.name} (most questions look like it); "
                            f"{len(where)} question(s) look like {other}: {_examples(where)}")
    else:
        try:
            bench = B.get(benchmark)
        except ValueError as exc:
            raise AnnotationError(f"--benchmark: {exc}") from None
    warnings += _file_warnings(file, doc, raw, ids, bench)
    _check_filters(file, filters, bench)
    invalid: list[Invalid] = []
    parsed: list[Question] = []
    seen: set[str] = set()
    variants: dict[str, list[str]] = {}
    for i, item in enumerate(raw):
        images = doc.embedded[i] if doc.embedded is not None else ()
        q, errs, seen_variants = QP.parse(item, i, bench, file, embedded=bool(doc.embedded))
        for v in seen_variants:
            variants.setdefault(v, []).append(ids[i])
        if q is not None and doc.embedded is not None:
            problem = _embedded_problem(q, bench, images)
            if problem:
                errs, q = [Invalid(file, q.question_id, *problem, i)], None
            else:
                q = Question(**{**q.__dict__, "images": images})
        invalid.extend(errs)
        if q is None:
            continue
        if q.question_id in seen:
            invalid.append(Invalid(file, q.question_id, "question_id", "is a duplicate",
                                   q.index))
            continue
        seen.add(q.question_id)
        if select(q, bench, filters):
            parsed.append(q)
    if variants:
        warnings.append(f"{file}: read variants of {bench.name}'s published fields: "
                        + "; ".join(f"{v} in {len(w)} question(s) (e.g. {_examples(w, 3)})"
                                    for v, w in variants.items()))
    if filters.limit is not None:
        parsed = parsed[: filters.limit]
    return Dataset(benchmark=bench.name, file=file, questions=parsed, invalid=invalid,
                   warnings=warnings, source=doc.source, sha256=doc.sha256,
                   file_questions=len(raw), question_type=doc.question_type)


def _file_warnings(file: str, doc: AF.Document, raw: list, ids: list[str],
                   bench: Benchmark) -> list[str]:
    """What in the file does not fit the benchmark: its question_type map, extra fields."""
    out = []
    differences = AF.question_type_differences(doc.question_type, bench)
    if differences:
        out.append(f"{file}: its question_type map differs from {bench.name}'s dimensions "
                   f"(the ids decide; the names shown are {bench.name}'s): "
                   + "; ".join(differences[:5])
                   + (f" and {len(differences) - 5} more" if len(differences) > 5 else ""))
    known = bench.fields | {QP.other_case(k) for k in bench.choice_keys}
    for fld, where in AF.extra_fields(raw, ids, known).items():
        what = ("a fifth choice; SEED-Bench questions have four (A-D)"
                if fld.lower() == "choice_e" else f"not a {bench.name} field")
        out.append(f"{file}: field {fld!r} ignored ({what}) in {len(where)} question(s): "
                   f"{_examples(where)}")
    return out


def _check_filters(file: str, filters: Filters, bench: Benchmark) -> None:
    if not bench.filters and (filters.level or filters.version or filters.subpart):
        with_filters = [b.name for b in B.BENCHMARKS.values() if b.filters]
        raise AnnotationError(f"--level/--version/--subpart apply to {', '.join(with_filters)} "
                              f"only ({file} was read as {bench.name})")
    if filters.subpart and filters.subpart not in bench.subparts:
        raise AnnotationError(f"--subpart {filters.subpart!r} is not a {bench.name} subpart")
    unknown = sorted(set(filters.dimensions or ()) - set(bench.dimensions))
    if unknown:
        raise AnnotationError(f"--dimensions: {', '.join(map(str, unknown))} "
                              f"{'is not a dimension' if len(unknown) == 1 else 'are not dimensions'}"
                              f" of {bench.name} (its dimensions are 1-{max(bench.dimensions)}; "
                              f"{file} was read as {bench.name})")


def _examples(ids: list[str], n: int = 5) -> str:
    more = f" and {len(ids) - n} more" if len(ids) > n else ""
    return ", ".join(ids[:n]) + more
