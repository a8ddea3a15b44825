"""Benchmark constants: dimension names, parts and levels of SEED-Bench-1 and -2."""

from __future__ import annotations

V1 = "SEED-Bench-1"
V2 = "SEED-Bench-2"

_COMMON = [
    "Scene Understanding", "Instance Identity", "Instance Attributes", "Instance Location",
    "Instances Counting", "Spatial Relation", "Instance Interaction", "Visual Reasoning",
    "Text Understanding",
]
V1_NAMES: dict[int, str] = {i + 1: n for i, n in enumerate(
    _COMMON + ["Action Recognition", "Action Prediction", "Procedure Understanding"])}
V2_NAMES: dict[int, str] = {i + 1: n for i, n in enumerate(_COMMON + [
    "Celebrity Recognition", "Landmark Recognition", "Chart Understanding",
    "Visual Referring Expression", "Science Knowledge", "Emotion Recognition",
    "Visual Mathematics", "Difference Spotting", "Meme Comprehension",
    "Global Video Understanding", "Action Recognition", "Action Prediction",
    "Procedure Understanding", "In-Context Captioning", "Interleaved Image-Text Analysis",
    "Text-to-Image Generation", "Next Image Prediction", "Text-Image Creation",
])}

SUBPARTS = {
    "Single-Image & Text Comprehension": range(1, 17),
    "Multiple-Images & Text Comprehension": range(17, 19),
    "Video & Text Comprehension": range(19, 23),
    "Interleaved Image & Text Comprehension": range(23, 25),
    "Image Generation": range(25, 27),
    "Image & Text Generation": range(27, 28),
}
LEVELS = ("L1", "L2", "L3")
VERSIONS = ("v1", "v2")
# Official cumulative filters.
LEVEL_INCLUDES = {"L1": {"L1"}, "L2": {"L1", "L2"}, "L3": {"L1", "L2", "L3"}}
VERSION_INCLUDES = {"v1": {"v1"}, "v2": {"v1", "v2"}}

# Dimensions whose answers need image generation and a CLIP service.
GENERATION_DIMS = frozenset({25, 26, 27})


def names(benchmark: str) -> dict[int, str]:
    return V1_NAMES if benchmark == V1 else V2_NAMES


def v2_level(dim: int) -> str:
    return "L1" if dim <= 22 else "L2" if dim <= 24 else "L3"


def v2_subpart(dim: int) -> str:
    for name, dims in SUBPARTS.items():
        if dim in dims:
            return name
    raise KeyError(dim)


def _r(a: int, b: int) -> tuple[int, ...]:
    return tuple(range(a, b + 1))


# (label, dims averaged, dims of which at least one must be answered for a value).
# L2 and L3 need their own top part answered, so a model that cannot generate
# images shows L3 as n/a rather than a copy of L2.
V2_AVERAGES = [
    ("L1", _r(1, 22), _r(1, 22)),
    ("L2", _r(1, 24), _r(23, 24)),
    ("L3", _r(1, 27), _r(25, 27)),
    ("P1", _r(1, 22), _r(1, 22)),
    ("P2", _r(23, 24), _r(23, 24)),
    ("P3", _r(25, 27), _r(25, 27)),
    ("Single", _r(1, 16), _r(1, 16)),
    ("Multi", _r(17, 18), _r(17, 18)),
    ("Video", _r(19, 22), _r(19, 22)),
]
V1_AVERAGES = [
    ("Image", _r(1, 9), _r(1, 9)),
    ("Video", _r(10, 12), _r(10, 12)),
    ("All", _r(1, 12), _r(1, 12)),
]


def averages_spec(benchmark: str):
    return V1_AVERAGES if benchmark == V1 else V2_AVERAGES


# The groups a leaderboard shows first: each benchmark's headline numbers.
HEADLINE = {V2: ("L1", "L2", "L3"), V1: ("Image", "Video", "All")}


def headline_groups(benchmark: str) -> tuple[str, ...]:
    return HEADLINE.get(benchmark, ())
