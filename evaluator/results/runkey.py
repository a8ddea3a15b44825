"""The key answers are stored under, and its one serialised form.

Two runs share answers only when they ask the same model (fingerprint) the same
way (method, preset, end-of-turn flag). L3 answers also depend on the CLIP model that
picked the option image, so their rows carry its fingerprint; every other row
carries "" and belongs to a key whatever its CLIP. Which dimensions depend on
CLIP is the benchmark definition's `generation_dims`, carried by the key, so the
store stays ignorant of dimension numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from evaluator.data import benchmarks as B


@dataclass(frozen=True)
class RunKey:
    fingerprint: str
    method: str
    include_eot: bool
    clip: str = ""  # CLIP fingerprint, part of the key of L3 answers only
    preset: str = "chat-mean"  # evaluator.run.presets name
    clip_dims: frozenset[int] = field(default=B.GENERATION_DIMS, compare=False)

    def params(self) -> tuple:
        """(fingerprint, method, preset, include_eot) as stored."""
        return (self.fingerprint, self.method, self.preset, int(self.include_eot))

    def clip_for(self, dimension: int) -> str:
        """The CLIP fingerprint an answer of this dimension is stored with ("" if none)."""
        return self.clip if dimension in self.clip_dims else ""

    def row_params(self, dimension: int) -> tuple:
        return (*self.params(), self.clip_for(dimension))

    def to_dict(self) -> dict:
        return {"fingerprint": self.fingerprint, "method": self.method, "preset": self.preset,
                "include_end_of_turn": self.include_eot, "clip": self.clip}

    @classmethod
    def from_run(cls, run: dict) -> RunKey:
        """The key of a recorded run (the `run` meta record; older records lack `key`, and
        records made before presets used what is now "chat-mean")."""
        bench = B.find(run.get("benchmark"))
        clip_dims = bench.generation_dims if bench else B.GENERATION_DIMS
        if "key" in run:
            k = run["key"]
            return cls(k["fingerprint"], k["method"], bool(k["include_end_of_turn"]), k["clip"],
                       k.get("preset", "chat-mean"), clip_dims)
        clip = run.get("clip")
        return cls(run["model"]["fingerprint"], run["method"], bool(run["include_end_of_turn"]),
                   clip["fingerprint"] if clip else "",
                   (run.get("preset") or {}).get("name", "chat-mean"), clip_dims)


def model_change(previous_run: dict | None, key: RunKey) -> str | None:
    """What to tell the user when an --out that holds another model's run is reused.

    The rule: answers are never shared between fingerprints (the fingerprint is part
    of the key), and none is deleted either. Both models' answers are kept; this run
    asks every question again, and the reports show this run.
    """
    if not previous_run:
        return None
    before = RunKey.from_run(previous_run).fingerprint
    if before == key.fingerprint:
        return None
    name = (previous_run.get("model") or {}).get("name") or "a model"
    return (f"this output folder holds the answers of {name} (fingerprint {before}); the model "
            f"now has fingerprint {key.fingerprint}, so none of them is reused: every question "
            "is asked again (both models' answers are kept)")
