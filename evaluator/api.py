"""The evaluator as a library: configure, plan, evaluate, load and compare runs.

    from evaluator import RunConfig, evaluate, load_run, compare

    config = RunConfig(annotations="SEED-Bench_v2_level1_2_3.json",
                       media_roots={"cc3m": "data/cc3m", "SEED-Bench v2": "data/seed_bench_v2"},
                       model=["localhost:50051"], out="results/llava", level="L2")
    result = evaluate(config)               # blocks; evaluate_async(config) beside it
    result.summary.groups["L1"].task        # typed: DimensionScore, GroupScore, ...
    load_run("results/llava")               # a finished or partial run, from its results store
    compare([result, "results/other"], reference="seed2-llava-1.5-7b")

docs/api.md walks through it. The command line (`seedbench`) is built on these
same calls; `evaluator` hands out the names of this module's __all__ on first use.
"""

from evaluator.reports.compare import ComparedRun, CompareError, Comparison, compare
from evaluator.results.run_record import Provenance, RunRecord
from evaluator.results.run_result import QuestionResult, RunLoadError, RunResult, load_run
from evaluator.results.scores import DimensionScore, GroupScore, Summary
from evaluator.run.config import ConfigError, RunConfig
from evaluator.run.plan import RunPlan
from evaluator.run.session import Reporter, RunFailed, evaluate, evaluate_async, plan_async
from evaluator.run.session import plan_run as plan

__all__ = [
    "CompareError", "ComparedRun", "Comparison", "ConfigError", "DimensionScore", "GroupScore",
    "Provenance", "QuestionResult", "Reporter", "RunConfig", "RunFailed", "RunLoadError",
    "RunPlan", "RunRecord", "RunResult", "Summary", "compare", "evaluate", "evaluate_async",
    "load_run", "plan", "plan_async",
]
