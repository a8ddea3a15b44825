"""Metrics against hand-computed values; the official filter semantics."""

import pytest

from evaluator.data import benchmarks as B
from evaluator.data.dataset import Filters, Question, select
from evaluator.results.metrics import Outcome, averages, dimension_stats, task_average, weighted_average


def outcomes(dim, correct, wrong, errors=0):
    return ([Outcome(dim, "ok", True)] * correct + [Outcome(dim, "ok", False)] * wrong
            + [Outcome(dim, "error")] * errors)


def test_task_average_differs_from_question_weighted():
    # dim 1: 9/10 = 90 %, dim 2: 1/2 = 50 % -> task 70 %, weighted 10/12 = 83.33 %
    stats = dimension_stats(B.SEED_BENCH_2.name, outcomes(1, 9, 1) + outcomes(2, 1, 1, errors=3))
    assert stats[1].accuracy == 90.0 and stats[2].accuracy == 50.0
    assert stats[2].errors == 3 and stats[2].total == 2  # errors are not scored as wrong
    assert task_average(stats, [1, 2]) == pytest.approx(70.0)
    assert weighted_average(stats, [1, 2]) == pytest.approx(1000 / 12)


def test_v2_groups_and_null_levels():
    stats = dimension_stats(B.SEED_BENCH_2.name, outcomes(1, 3, 1) + outcomes(17, 1, 1) + outcomes(23, 0, 2))
    avg = averages(B.SEED_BENCH_2.name, stats)
    assert avg["L1"]["task"] == pytest.approx((75 + 50) / 2)
    assert avg["L1"]["all"] == pytest.approx(100 * 4 / 6)
    assert avg["L2"]["task"] == pytest.approx((75 + 50 + 0) / 3)
    assert avg["L2"]["all"] == pytest.approx(100 * 4 / 8)
    assert avg["P2"] == {"task": 0.0, "all": 0.0, "dims_answered": 1, "dims": 2}
    assert avg["Single"]["task"] == 75.0 and avg["Multi"]["all"] == 50.0
    assert avg["L3"] is None and avg["P3"] is None and avg["Video"] is None
    assert stats[25].accuracy is None


def test_l2_is_null_without_interleaved_answers():
    avg = averages(B.SEED_BENCH_2.name, dimension_stats(B.SEED_BENCH_2.name, outcomes(1, 1, 0)))
    assert avg["L1"]["all"] == 100.0 and avg["L2"] is None


def test_v1_image_video_all():
    stats = dimension_stats(B.SEED_BENCH_1.name, outcomes(1, 6, 4) + outcomes(2, 1, 0) + outcomes(10, 1, 3))
    avg = averages(B.SEED_BENCH_1.name, stats)
    assert avg["Image"]["all"] == pytest.approx(100 * 7 / 11)
    assert avg["Image"]["task"] == pytest.approx((60 + 100) / 2)
    assert avg["Video"]["all"] == 25.0
    assert avg["All"]["all"] == pytest.approx(100 * 8 / 15)
    assert avg["All"]["task"] == pytest.approx((60 + 100 + 25) / 3)
    assert set(avg) == {"Image", "Video", "All"}


def test_all_errors_is_null_not_zero():
    stats = dimension_stats(B.SEED_BENCH_2.name, outcomes(3, 0, 0, errors=5))
    assert stats[3].accuracy is None and stats[3].errors == 5
    assert averages(B.SEED_BENCH_2.name, stats)["L1"] is None


def q(level, version, subpart, dim=1):
    return Question(0, "x", "q?", ("a", "b", "c", "d"), "A", dim, ("i.png",),
                    level=level, version=version, subpart=subpart)


def test_level_filter_is_cumulative():
    qs = [q("L1", "v1", ""), q("L2", "v1", ""), q("L3", "v1", "")]
    pick = lambda lv: [x.level for x in qs if select(x, B.SEED_BENCH_2, Filters(level=lv))]  # noqa: E731
    assert pick("L1") == ["L1"]
    assert pick("L2") == ["L1", "L2"]
    assert pick("L3") == ["L1", "L2", "L3"]


def test_version_filter_is_cumulative():
    qs = [q("L1", "v1", ""), q("L1", "v2", "")]
    assert [x.version for x in qs if select(x, B.SEED_BENCH_2, Filters(version="v1"))] == ["v1"]
    assert [x.version for x in qs if select(x, B.SEED_BENCH_2, Filters(version="v2"))] == ["v1", "v2"]


def test_subpart_is_exact_match():
    qs = [q("L1", "v1", "Image Generation"), q("L1", "v1", "Image & Text Generation")]
    got = [x.subpart for x in qs if select(x, B.SEED_BENCH_2, Filters(subpart="Image Generation"))]
    assert got == ["Image Generation"]  # a substring match would take both


def test_dimension_filter():
    assert select(q("L1", "v1", "", dim=5), B.SEED_BENCH_2.name, Filters(dimensions=frozenset({5})))
    assert not select(q("L1", "v1", "", dim=4), B.SEED_BENCH_2.name, Filters(dimensions=frozenset({5})))
