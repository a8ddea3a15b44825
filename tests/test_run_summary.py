"""The evaluator's end-of-run summary: throughput, call latency percentiles, replica shares."""

from __future__ import annotations

import io

from rich.console import Console

from evaluator.reports.terminal import print_run
from evaluator.results.run_record import RunRecord
from evaluator.run.client import percentiles_ms


def test_percentiles_are_nearest_rank_in_ms():
    assert percentiles_ms([k / 1000 for k in range(100, 0, -1)]) == {"p50": 50.0, "p90": 90.0,
                                                                   "p99": 99.0}
    assert percentiles_ms([0.25]) == {"p50": 250.0, "p90": 250.0, "p99": 250.0}
    assert percentiles_ms([]) == {}


def test_print_run_names_each_replica_and_its_share():
    run = {"answered": 30, "elapsed_s": 2.0, "throughput_qps": 15.0, "cpu_s": 0.4,
           "latency_ms": {"p50": 10.0, "p90": 20.0, "p99": 40.0},
           "endpoints": [
               {"target": "127.0.0.1:1", "status": "up", "calls": 21, "ok": 20, "failures": 1,
                "latency_ms": {"p50": 9.0, "p90": 19.0, "p99": 39.0}},
               {"target": "127.0.0.1:2", "status": "up", "calls": 10, "ok": 10, "failures": 0,
                "latency_ms": {"p50": 11.0, "p90": 21.0, "p99": 41.0}}]}
    buf = io.StringIO()
    print_run(RunRecord.from_dict(run), Console(file=buf, width=200))
    text = buf.getvalue()
    assert "30 answered in 2 s (15 questions/s, client CPU 0.4 s)" in text
    assert "p50 / p90 / p99: 10 / 20 / 40 ms" in text
    rows = {ln.split("│")[1].strip(): ln for ln in text.splitlines() if "127.0.0.1" in ln}
    assert "67%" in rows["127.0.0.1:1"] and "9 / 19 / 39 ms" in rows["127.0.0.1:1"]
    assert "33%" in rows["127.0.0.1:2"]
