"""The SEED-Bench family as data: one `Benchmark` definition per benchmark.

A definition says everything the evaluator needs to know about a benchmark:
its dimensions and their names, the groups it reports and how each averages,
its question fields (with the variants copies of the data carry), its media
rules, its filters and its submission format. Loading, scoring, reports,
compare and presets look these up instead of branching on a benchmark's
name, so adding a benchmark is adding a definition (SEED-Bench-2-Plus is one).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

TASK = "task"  # mean of the per-dimension accuracies (the SEED-Bench-2 paper's Task Average)
ALL = "all"  # question-weighted (the leaderboard's All Average, SEED-Bench-1's numbers)
SUBMISSION = ("question_id", "prediction")  # one JSON object per line, the same for all three


@dataclass(frozen=True)
class Group:
    """One reported average: `dims` averaged; a value only when one of `requires` has an
    answer (L3 without image generation is n/a, not a copy of L2); `reported` is the
    average the benchmark's own tables give (both are always computed)."""

    label: str
    dims: tuple[int, ...]
    requires: tuple[int, ...]
    reported: str = TASK


@dataclass(frozen=True)
class Benchmark:
    name: str
    file_name: str  # the annotation file as published
    dimensions: Mapping[int, str]  # id -> name (SEED-Bench-2-Plus: its categories)
    groups: tuple[Group, ...]
    headline: tuple[str, ...]  # the groups every table shows first
    choice_keys: tuple[str, str, str, str]  # as published; the other case is read too
    fields: frozenset[str]  # every published question field (others are reported, ignored)
    dimension_field: str = "question_type_id"  # an integer id, or a category name (below)
    categories: Mapping[str, int] = field(default_factory=dict)  # category name -> id
    subtype_field: str | None = None  # a finer breakdown reported beside the dimensions
    root_key: str | None = "data_source"  # the question field naming its media root
    fixed_root: str = "image"  # the root key when root_key is None
    video_dims: frozenset[int] = frozenset()  # raw videos or 8-frame folders (SEED-Bench-1)
    generation_dims: frozenset[int] = frozenset()  # answered by image generation + CLIP
    options_in_images: frozenset[int] = frozenset()  # data_id ends with 4 option images
    subparts: Mapping[str, tuple[int, ...]] = field(default_factory=dict)  # --subpart names
    levels: Mapping[str, frozenset[str]] = field(default_factory=dict)  # --level, cumulative
    versions: Mapping[str, frozenset[str]] = field(default_factory=dict)  # --version, cumulative
    presets: tuple[str, ...] = ()  # presets whose reference interface applies to it
    markers: frozenset[str] = frozenset()  # fields only its questions carry (detection)
    note: str = ""

    @property
    def filters(self) -> bool:
        """Whether --level/--version/--subpart apply."""
        return bool(self.levels)

    def level_of(self, dim: int) -> str:
        """The level of a dimension: the first level whose first-part group holds it."""
        for level in self.levels:
            if dim in self.group(level).dims:
                return level
        return ""

    def subpart_of(self, dim: int) -> str:
        return next((name for name, dims in self.subparts.items() if dim in dims), "")

    def group(self, label: str) -> Group:
        return next(g for g in self.groups if g.label == label)

    def category_id(self, value: str) -> int | None:
        """A category name (any case) as its dimension id, or None."""
        return {k.lower(): v for k, v in self.categories.items()}.get(value.strip().lower())

    def looks_like(self, q: dict) -> bool:
        """Whether a raw question carries this benchmark's own fields or dimension ids."""
        if any(k in q for k in self.markers):
            return True
        if self.categories and self.choice_keys[0] in q and "question_type_id" not in q:
            return True  # its own choice-key case and no SEED-Bench-1/2 dimension id
        dim = q.get(self.dimension_field)
        return (self.dimension_field == "question_type_id" and isinstance(dim, int)
                and not isinstance(dim, bool) and dim in self.dimensions
                and dim > max(SEED_BENCH_1.dimensions))


def _r(a: int, b: int) -> tuple[int, ...]:
    return tuple(range(a, b + 1))


def _names(names: list[str]) -> Mapping[int, str]:
    return MappingProxyType({i + 1: n for i, n in enumerate(names)})


_COMMON = [
    "Scene Understanding", "Instance Identity", "Instance Attributes", "Instance Location",
    "Instances Counting", "Spatial Relation", "Instance Interaction", "Visual Reasoning",
    "Text Understanding",
]
_V1_V2_FIELDS = frozenset({
    "question_id", "question", "choice_a", "choice_b", "choice_c", "choice_d", "answer",
    "question_type_id", "data_id", "data_type", "data_source", "level", "subpart", "version",
    "segment",
})

SEED_BENCH_1 = Benchmark(
    name="SEED-Bench-1", file_name="SEED-Bench.json",
    dimensions=_names(_COMMON + ["Action Recognition", "Action Prediction",
                                 "Procedure Understanding"]),
    groups=(Group("Image", _r(1, 9), _r(1, 9), ALL), Group("Video", _r(10, 12), _r(10, 12), ALL),
            Group("All", _r(1, 12), _r(1, 12), ALL)),
    headline=("Image", "Video", "All"),
    choice_keys=("choice_a", "choice_b", "choice_c", "choice_d"), fields=_V1_V2_FIELDS,
    root_key=None, video_dims=frozenset({10, 11, 12}),
    presets=("chat-mean", "seed1-instructblip", "seed1-instructblip-hf"),
)

SEED_BENCH_2 = Benchmark(
    name="SEED-Bench-2", file_name="SEED-Bench_v2_level1_2_3.json",
    dimensions=_names(_COMMON + [
        "Celebrity Recognition", "Landmark Recognition", "Chart Understanding",
        "Visual Referring Expression", "Science Knowledge", "Emotion Recognition",
        "Visual Mathematics", "Difference Spotting", "Meme Comprehension",
        "Global Video Understanding", "Action Recognition", "Action Prediction",
        "Procedure Understanding", "In-Context Captioning", "Interleaved Image-Text Analysis",
        "Text-to-Image Generation", "Next Image Prediction", "Text-Image Creation"]),
    groups=(
        Group("L1", _r(1, 22), _r(1, 22)), Group("L2", _r(1, 24), _r(23, 24)),
        Group("L3", _r(1, 27), _r(25, 27)), Group("P1", _r(1, 22), _r(1, 22)),
        Group("P2", _r(23, 24), _r(23, 24)), Group("P3", _r(25, 27), _r(25, 27)),
        Group("Single", _r(1, 16), _r(1, 16)), Group("Multi", _r(17, 18), _r(17, 18)),
        Group("Video", _r(19, 22), _r(19, 22)),
    ),
    headline=("L1", "L2", "L3"),
    choice_keys=("choice_a", "choice_b", "choice_c", "choice_d"), fields=_V1_V2_FIELDS,
    generation_dims=frozenset({25, 26, 27}), options_in_images=frozenset({25, 26, 27}),
    subparts=MappingProxyType({
        "Single-Image & Text Comprehension": _r(1, 16),
        "Multiple-Images & Text Comprehension": _r(17, 18),
        "Video & Text Comprehension": _r(19, 22),
        "Interleaved Image & Text Comprehension": _r(23, 24),
        "Image Generation": _r(25, 26),
        "Image & Text Generation": _r(27, 27),
    }),
    levels=MappingProxyType({"L1": frozenset({"L1"}), "L2": frozenset({"L1", "L2"}),
                             "L3": frozenset({"L1", "L2", "L3"})}),
    versions=MappingProxyType({"v1": frozenset({"v1"}), "v2": frozenset({"v1", "v2"})}),
    presets=("chat-mean", "llava-1.5", "internlm-xcomposer", "qwen-vl-chat"),
    markers=frozenset({"level", "subpart", "version", "data_source"}),
)

SEED_BENCH_2_PLUS = Benchmark(
    name="SEED-Bench-2-Plus", file_name="SEED-Bench-2-plus-text-rich.json",
    dimensions=_names(["Chart", "Map", "Web"]),
    groups=(Group("Chart", (1,), (1,), ALL), Group("Map", (2,), (2,), ALL),
            Group("Web", (3,), (3,), ALL), Group("All", (1, 2, 3), (1, 2, 3), ALL)),
    headline=("Chart", "Map", "Web", "All"),
    choice_keys=("choice_A", "choice_B", "choice_C", "choice_D"),
    fields=frozenset({"question_id", "question", "choice_A", "choice_B", "choice_C", "choice_D",
                      "answer", "data_id", "question_image_type", "question_image_subtype",
                      "data_source", "data_type", "level", "subpart", "version"}),
    dimension_field="question_image_type",
    categories=MappingProxyType({"chart": 1, "map": 2, "web": 3}),
    subtype_field="question_image_subtype",
    # Single text-rich images: the SEED-Bench-2 interfaces of single-image questions apply.
    presets=("chat-mean", "llava-1.5", "internlm-xcomposer", "qwen-vl-chat"),
    markers=frozenset({"question_image_type", "question_image_subtype"}),
    note="scored by generation by its authors' recommended toolkits; no published row ranks "
         "the options by likelihood",
)

# Detection order: the most specific first (2-Plus questions carry SEED-Bench-2's fields too).
BENCHMARKS: Mapping[str, Benchmark] = MappingProxyType(
    {b.name: b for b in (SEED_BENCH_2_PLUS, SEED_BENCH_2, SEED_BENCH_1)})
_ALIASES = {"v1": SEED_BENCH_1, "1": SEED_BENCH_1, "v2": SEED_BENCH_2, "2": SEED_BENCH_2,
            "v2plus": SEED_BENCH_2_PLUS, "v2+": SEED_BENCH_2_PLUS, "2-plus": SEED_BENCH_2_PLUS,
            "2plus": SEED_BENCH_2_PLUS}


# Dimensions answered with CLIP in any benchmark (ids are not shared across definitions).
GENERATION_DIMS = frozenset().union(*(b.generation_dims for b in BENCHMARKS.values()))


def get(name: str) -> Benchmark:
    """A definition by name (any case) or alias (v1, v2, v2plus); ValueError names the choices."""
    key = name.strip().lower()
    for b in BENCHMARKS.values():
        if b.name.lower() == key:
            return b
    if key in _ALIASES:
        return _ALIASES[key]
    raise ValueError(f"unknown benchmark {name!r}; choose from {', '.join(BENCHMARKS)} "
                     "(or v1, v2, v2plus)")


def find(name: str | None) -> Benchmark | None:
    """The definition of a recorded benchmark name, or None for one this version lacks."""
    try:
        return get(name) if isinstance(name, str) else None
    except ValueError:
        return None


def classify(q: dict) -> Benchmark:
    """The benchmark a raw question looks like: the first whose own fields it carries,
    SEED-Bench-1 (which has none of its own) otherwise."""
    return next((b for b in BENCHMARKS.values() if b.looks_like(q)), SEED_BENCH_1)


def all_subparts() -> Mapping[str, str]:
    """--subpart name -> the benchmark it belongs to (checked before the file is read)."""
    return {name: b.name for b in BENCHMARKS.values() for name in b.subparts}
