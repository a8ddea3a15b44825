"""Load SEED-Bench-1/2 annotation files, apply the official filters, validate early.

Every bad question is reported at once (file, question id, field, reason) and
skipped; the good ones run. Media is only located and checked here, never kept
in memory: the runner reads it lazily.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

from evaluator.data import annotation_file as AF
from evaluator.data import dimensions as D
from evaluator.data.annotation_file import AnnotationError
from evaluator.data.media import MediaError, check_image, frame_files, root_for, safe_join
from evaluator.data.video_frames import VideoClip
from evaluator.data.video_sources import VIDEO_DIMS, VideoSources
from serving.images import PLACEHOLDER

LETTERS = ("A", "B", "C", "D")
MAX_ID_CHARS = 1024  # ids go into every request, log line and file name; real ones are short
CHOICE_FIELDS = ("choice_a", "choice_b", "choice_c", "choice_d")


@dataclass(frozen=True)
class Question:
    index: int  # position in the annotation file: fixes output order
    question_id: str
    question: str
    choices: tuple[str, str, str, str]
    answer: str
    dimension: int
    data_ids: tuple[str, ...]
    data_type: str = ""
    data_source: str = ""
    level: str = ""
    subpart: str = ""
    version: str = ""
    segment: tuple[float, float] | None = None  # SEED-Bench-1 dims 11-12: part of the video
    image_paths: tuple[Path, ...] = field(default=(), compare=False)
    video: VideoClip | None = field(default=None, compare=False)  # raw video: frames sampled


@dataclass(frozen=True)
class Invalid:
    file: str
    question_id: str
    field: str
    reason: str
    position: int = field(default=-1, compare=False)  # index in the file; not written out

    def as_dict(self) -> dict:
        return {"file": self.file, "question_id": self.question_id, "field": self.field,
                "reason": self.reason}

    def __str__(self) -> str:
        return f"{self.file}: question {self.question_id}: {self.field}: {self.reason}"


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
    # What identifies the file's version (evaluator.data.provenance): its bytes' sha256, how
    # many questions it holds (valid or not, selected or not) and its question_type map.
    sha256: str = ""
    file_questions: int = 0
    question_type: object = None

    @property
    def rejected(self) -> int:
        """How many questions were skipped as invalid."""
        return len({(x.position, x.question_id) for x in self.invalid})


__all__ = ["AnnotationError", "Dataset", "Filters", "Invalid", "Question", "load", "parse"]


def _qid(q: object, i: int) -> str:
    """The question's id as it can be printed and stored, else its position `#i`."""
    v = q.get("question_id") if isinstance(q, dict) else None
    if (isinstance(v, (str, int)) and not isinstance(v, bool) and str(v).strip()
            and len(str(v)) <= MAX_ID_CHARS):
        return AF.printable(str(v))
    return f"#{i}"


def _parse(q: object, i: int, benchmark: str, file: str) -> tuple[Question | None, list[Invalid]]:
    """Check field presence and types; returns the question or its errors (all of them)."""
    if not isinstance(q, dict):
        return None, [Invalid(file, f"#{i}", "(question)", "is not a JSON object", i)]
    qid = _qid(q, i)
    errs: list[Invalid] = []

    def bad(fld: str, reason: str) -> None:
        errs.append(Invalid(file, qid, fld, reason, i))

    problems = AF.field_problems(q)
    if problems:  # text that cannot be stored or sent: nothing else is worth checking
        return None, [Invalid(file, qid, fld, reason, i) for fld, reason in problems]

    raw_id = q.get("question_id")
    if raw_id is None:
        bad("question_id", "is missing")
    elif isinstance(raw_id, bool) or not isinstance(raw_id, (str, int)) or not str(raw_id).strip():
        bad("question_id", f"must be a non-empty string, got {type(raw_id).__name__}")
    elif len(str(raw_id)) > MAX_ID_CHARS:
        bad("question_id", f"is {len(str(raw_id))} characters long; at most {MAX_ID_CHARS}")

    def text(fld: str) -> str:
        v = q.get(fld)
        if v is None:
            bad(fld, "is missing")
        elif not isinstance(v, str):
            bad(fld, f"must be a string, got {type(v).__name__}")
        elif not v.strip():
            bad(fld, "is empty")
        else:
            return v
        return ""

    def choice(fld: str) -> str:
        v = q.get(fld)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return str(v)  # counting answers sometimes come as JSON numbers: same text
        return text(fld)

    question = text("question")
    choices = tuple(choice(f) for f in CHOICE_FIELDS)
    answer = q.get("answer")
    if answer is None:
        bad("answer", "is missing")
    elif not isinstance(answer, str) or answer.strip() not in LETTERS:
        bad("answer", f"must be one of A, B, C, D, got {answer!r}")
    dim = q.get("question_type_id")
    if dim is None:
        bad("question_type_id", "is missing")
    elif isinstance(dim, bool) or not isinstance(dim, int):
        bad("question_type_id", f"must be an integer, got {type(dim).__name__}")
    elif dim not in D.names(benchmark):
        bad("question_type_id", f"unknown dimension id {dim} for {benchmark} "
            f"(valid: 1-{max(D.names(benchmark))})")
    data_id = q.get("data_id")
    if data_id is None:
        bad("data_id", "is missing")
        data_ids: tuple[str, ...] = ()
    elif isinstance(data_id, str):
        data_ids = (data_id,)
    elif isinstance(data_id, list) and data_id and all(isinstance(x, str) for x in data_id):
        data_ids = tuple(data_id)
    else:
        bad("data_id", "must be a string or a non-empty list of strings")
        data_ids = ()
    segment = _segment(q.get("segment"), bad)
    opt = {}
    for fld in ("data_type", "data_source", "level", "subpart", "version"):
        v = q.get(fld, "")
        if not isinstance(v, str):
            bad(fld, f"must be a string, got {type(v).__name__}")
            v = None
        opt[fld] = v
    wrong_type = {k for k, v in opt.items() if v is None}
    opt = {k: v or "" for k, v in opt.items()}
    if benchmark == D.V2:
        if not opt["data_source"] and "data_source" not in wrong_type:
            bad("data_source", "is missing (needed to pick the media root)")
        if opt["level"] and opt["level"] not in D.LEVELS:
            bad("level", f"must be one of L1, L2, L3, got {opt['level']!r}")
        if opt["version"] and opt["version"] not in D.VERSIONS:
            bad("version", f"must be v1 or v2, got {opt['version']!r}")
        if isinstance(dim, int) and dim in D.V2_NAMES:
            opt["level"] = opt["level"] or D.v2_level(dim)
            opt["subpart"] = opt["subpart"] or D.v2_subpart(dim)
    if errs:
        return None, errs
    return Question(index=i, question_id=qid, question=question, choices=choices,
                    answer=answer.strip(), dimension=dim, data_ids=data_ids, segment=segment,
                    **opt), []


def _segment(v: object, bad) -> tuple[float, float] | None:
    """`segment`: absent/null, or [start, end] numbers (seconds or frame indices)."""
    if v is None:
        return None
    if (isinstance(v, list) and len(v) == 2
            and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v)):
        return v[0], v[1]
    bad("segment", f"must be [start, end] (two numbers), got {v!r}")
    return None


def select(q: Question, benchmark: str, f: Filters) -> bool:
    """Official semantics: cumulative level and version, exact subpart."""
    if f.dimensions and q.dimension not in f.dimensions:
        return False
    if benchmark == D.V2:
        if f.level and q.level not in D.LEVEL_INCLUDES[f.level]:
            return False
        if f.version and q.version not in D.VERSION_INCLUDES[f.version]:
            return False
        if f.subpart and q.subpart != f.subpart:
            return False
    return True


def source_key(q: Question, benchmark: str) -> str:
    """The media-root key of an image question (SEED-Bench-1 video: see video_sources)."""
    return q.data_source if benchmark == D.V2 else "image"


def resolve_media(q: Question, benchmark: str, roots: dict[str, Path]) -> list[Path]:
    """Locate every image of a question under its root; raises MediaError."""
    root = root_for(roots, source_key(q, benchmark))
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


def _check_media(q: Question, benchmark: str, roots: dict[str, Path], file: str,
                 videos: VideoSources | None = None):
    clip = None
    try:
        if benchmark == D.V1 and q.dimension in VIDEO_DIMS:
            paths, clip = resolve_video(q, videos or VideoSources(roots))
        else:
            paths = resolve_media(q, benchmark, roots)
    except MediaError as exc:
        return None, Invalid(file, q.question_id, exc.field, exc.reason, q.index)
    except (OSError, ValueError) as exc:  # what the file system refuses is this question's error
        return None, Invalid(file, q.question_id, "data_id", f"cannot be read: {exc}",
                             q.index)
    n = q.question.count(PLACEHOLDER)
    # L3 questions end data_id with 4 option images; marks may count only the inputs.
    allowed = {len(paths)}
    if benchmark == D.V2 and q.dimension in D.GENERATION_DIMS:
        allowed.add(len(paths) - 4)
    if n and n not in allowed:
        return None, Invalid(file, q.question_id, "question",
                             f"has {n} {PLACEHOLDER} placeholders but data_id gives "
                             f"{len(paths)} images", q.index)
    return Question(**{**q.__dict__, "image_paths": tuple(paths), "video": clip}), None


def load(path: str | Path, roots: dict[str, Path], filters: Filters = Filters(),
         benchmark: str | None = None, check_workers: int = 8) -> Dataset:
    """Parse, filter, then validate media of the selected questions in a thread pool."""
    ds = parse(path, filters, benchmark)
    file, parsed, invalid = ds.file, ds.questions, list(ds.invalid)
    videos = VideoSources(roots) if ds.benchmark == D.V1 else None
    with ThreadPoolExecutor(check_workers) as pool:
        checked = list(pool.map(lambda q: _check_media(q, ds.benchmark, roots, file, videos),
                                parsed))
    good = [q for q, err in checked if q is not None]
    invalid.extend(err for _, err in checked if err is not None)
    sources = videos.describe({q.dimension for q in parsed}) if videos else {}
    return replace(ds, questions=good, invalid=invalid, video_sources=sources)


def parse(path: str | Path, filters: Filters = Filters(),
          benchmark: str | None = None) -> Dataset:
    """Read, check and filter the questions without looking at any media (`load` adds that;
    scoring a predictions file needs only this)."""
    file = str(path)
    document = AF.load_document(Path(path))
    raw, question_type = document.questions, document.question_type
    ids = [_qid(q, i) for i, q in enumerate(raw)]
    warnings = []
    if benchmark is None:
        benchmark, misfits = AF.detect(raw, ids)
        if misfits:
            other = D.V1 if benchmark == D.V2 else D.V2
            warnings.append(f"{file}: read as {benchmark} (most questions look like it); "
                            f"{len(misfits)} question(s) look like {other}: "
                            f"{_examples(misfits)}")
    differences = AF.question_type_differences(question_type, benchmark)
    if differences:
        warnings.append(f"{file}: its question_type map differs from {benchmark}'s dimensions "
                        f"(the ids decide; the names shown are {benchmark}'s): "
                        + "; ".join(differences[:5])
                        + (f" and {len(differences) - 5} more" if len(differences) > 5 else ""))
    for fld, where in AF.extra_fields(raw, ids).items():
        what = ("a fifth choice; SEED-Bench questions have four (A-D)" if fld == "choice_e"
                else "not a SEED-Bench field")
        warnings.append(f"{file}: field {fld!r} ignored ({what}) in {len(where)} question(s): "
                        f"{_examples(where)}")
    if benchmark == D.V1 and (filters.level or filters.version or filters.subpart):
        raise AnnotationError("--level/--version/--subpart apply to SEED-Bench-2 only")
    unknown = sorted(set(filters.dimensions or ()) - set(D.names(benchmark)))
    if unknown:
        raise AnnotationError(f"--dimensions: {', '.join(map(str, unknown))} "
                              f"{'is not a dimension' if len(unknown) == 1 else 'are not dimensions'}"
                              f" of {benchmark} (its dimensions are 1-{max(D.names(benchmark))}; "
                              f"{file} was read as {benchmark})")
    invalid: list[Invalid] = []
    parsed: list[Question] = []
    seen: set[str] = set()
    for i, item in enumerate(raw):
        q, errs = _parse(item, i, benchmark, file)
        invalid.extend(errs)
        if q is None:
            continue
        if q.question_id in seen:
            invalid.append(Invalid(file, q.question_id, "question_id", "is a duplicate",
                                   q.index))
            continue
        seen.add(q.question_id)
        if select(q, benchmark, filters):
            parsed.append(q)
    if filters.limit is not None:
        parsed = parsed[: filters.limit]
    return Dataset(benchmark=benchmark, file=file, questions=parsed, invalid=invalid,
                   warnings=warnings, sha256=document.sha256, file_questions=len(raw),
                   question_type=question_type)


def _examples(ids: list[str], n: int = 5) -> str:
    more = f" and {len(ids) - n} more" if len(ids) > n else ""
    return ", ".join(ids[:n]) + more
