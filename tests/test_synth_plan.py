"""Distribution control: the seeded plan, quotas, and the achieved-vs-target report."""

from __future__ import annotations

from collections import Counter

import pytest

from medssr_nemo.records import QuestionRecord
from medssr_nemo.synthesis.plan import Target, distribution_report, plan_slots, quota, total_variation

TYPES = {"diagnosis": 0.4, "gene": 0.2, "inheritance": 0.2, "not_expected": 0.2}
LEVELS = {"easy": 1.0, "medium": 1.0, "hard": 1.0}


def _target(alpha, categories=None):
    return Target(alpha=alpha, question_types=TYPES, difficulties=LEVELS, categories=categories or {})


def test_quota_by_largest_remainder():
    assert Counter(quota({"a": 1, "b": 1, "c": 1}, 10)) == {"a": 4, "b": 3, "c": 3}
    assert Counter(quota({"x": 0.7, "y": 0.2, "z": 0.1}, 7)) == {"x": 5, "y": 1, "z": 1}   # 4.9, 1.4, 0.7
    assert quota({"a": 0.0, "b": 2.0}, 3) == ["b", "b", "b"]
    assert quota({"a": 1.0}, 0) == []


@pytest.mark.parametrize("seed", [0, 1, 7, 123])
def test_rare_share_follows_alpha(seed):
    slots = plan_slots(2000, _target(0.3), seed)
    share = sum(s.rare for s in slots) / 2000
    assert abs(share - 0.3) <= 0.02
    assert all(s.rare == (s.rho < 0.3) for s in slots)


def test_alpha_zero_and_one():
    assert not any(s.rare for s in plan_slots(500, _target(0.0), 3))
    assert all(s.rare for s in plan_slots(500, _target(1.0), 3))


def test_plan_is_deterministic_in_the_seed():
    assert plan_slots(300, _target(0.5), 11) == plan_slots(300, _target(0.5), 11)
    assert plan_slots(300, _target(0.5), 11) != plan_slots(300, _target(0.5), 12)


def test_quotas_over_rare_slots_are_exact():
    slots = plan_slots(1000, _target(0.3, {"eye": 1.0, "nervous_system": 3.0}), 5)
    rare = [s for s in slots if s.rare]
    assert Counter(s.question_type for s in rare) == Counter(quota(TYPES, len(rare)))
    assert Counter(s.category for s in rare) == Counter(quota({"eye": 1.0, "nervous_system": 3.0}, len(rare)))
    common = [s for s in slots if not s.rare]
    assert all(s.question_type is None and s.difficulty is None for s in common)
    with_difficulty = plan_slots(1000, _target(0.3), 5, nonrare_dimensions=("difficulty",))
    assert all(s.difficulty for s in with_difficulty)
    assert [s.branch_index for s in rare] == list(range(len(rare)))


def test_total_variation_by_hand():
    assert total_variation({"a": 0.5, "b": 0.5}, {"a": 0.5, "b": 0.5}) == 0.0
    assert total_variation({"a": 1.0}, {"b": 1.0}) == 1.0
    assert total_variation({"a": 0.6, "b": 0.4}, {"a": 0.3, "b": 0.3, "c": 0.4}) == pytest.approx(0.4)


def test_report_puts_achieved_next_to_target():
    def record(i, rare, qtype=None, level=None):
        return QuestionRecord(id=f"q{i}", question="?", options=["x", "y"], rare=rare, question_type=qtype,
                              difficulty=level)
    records = ([record(i, True, "diagnosis", "easy") for i in range(3)] + [record(3, True, "gene", "hard")]
               + [record(i, False, "seed") for i in range(4, 10)])
    report = distribution_report(records, _target(0.3))
    assert report["rare"] == {"target": 0.3, "achieved": 0.4, "planned": None, "tv_distance": 0.1}
    qt = report["question_type"]
    assert qt["achieved"] == {"diagnosis": 0.75, "gene": 0.25}
    # |0.75-0.4| + |0.25-0.2| + 0.2 + 0.2 = 0.8 -> TV 0.4
    assert qt["tv_distance"] == pytest.approx(0.4)
    assert report["difficulty"]["achieved"] == {"easy": 0.75, "hard": 0.25}
    assert report["category"]["target"] is None
    assert report["nonrare_achieved"]["question_type"] == {"seed": 1.0}
