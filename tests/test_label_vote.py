"""Majority vote, ties and the agreement threshold tau, against hand-made vote tables."""

from __future__ import annotations

import random

import pytest

from medssr_nemo.labelling.vote import VoteRule, count_votes, majority_vote

DROP = VoteRule(min_agreement=0.5, below_min_agreement="drop", tie_rule="drop")


def test_counts_ignore_missing_answers_and_sort_letters():
    assert count_votes(["C", None, "A", "C", "B", None, "C", "A"]) == {"A": 2, "B": 1, "C": 3}
    assert count_votes([None, None]) == {}
    # with the question's letters, an answer outside them (the paper's reader allows any A-Z) is no vote
    assert count_votes(["C", "I", "A", "E", None], letters="ABCD") == {"A": 1, "C": 1}


@pytest.mark.parametrize("table, samples, label, agreement", [
    ({"A": 5, "B": 2, "C": 1}, 8, "A", 5 / 8),
    ({"D": 8}, 8, "D", 1.0),
    ({"B": 4, "C": 3, "A": 1}, 8, "B", 0.5),           # exactly tau: kept
    ({"C": 3, "A": 1}, 4, "C", 0.75),
])
def test_clear_majority_is_the_label(table, samples, label, agreement):
    outcome = majority_vote(table, DROP, num_samples=samples, question_id="q")
    assert (outcome.label, outcome.agreement, outcome.kept, outcome.tied) == (label, agreement, True, False)
    assert outcome.vote_counts == dict(sorted(table.items()))


def test_agreement_counts_unanswered_samples_against_the_label():
    # 4 votes for A, 1 for B, 3 samples without an answer: 4/8, not 4/5
    outcome = majority_vote({"A": 4, "B": 1}, DROP, num_samples=8)
    assert outcome.agreement == 0.5 and outcome.label == "A"
    assert majority_vote({"A": 4, "B": 1}, DROP).agreement == 4 / 5   # default denominator: the votes


@pytest.mark.parametrize("table, samples, agreement, why_dropped", [
    ({"A": 3, "B": 2, "C": 2, "D": 1}, 8, 3 / 8, "below min agreement"),
    ({"A": 1, "B": 1, "C": 1, "D": 1, "E": 1}, 5, 1 / 5, "tie"),      # tie_rule=drop decides first
])
def test_below_tau_is_dropped_or_kept_with_its_agreement(table, samples, agreement, why_dropped):
    dropped = majority_vote(table, DROP, num_samples=samples)
    assert (dropped.label, dropped.dropped_because, dropped.agreement) == (None, why_dropped, agreement)
    keep = VoteRule(min_agreement=0.5, below_min_agreement="keep", tie_rule="lowest_letter")
    kept = majority_vote(table, keep, num_samples=samples)
    assert kept.kept and kept.label == "A" and kept.agreement == agreement


def test_tie_rules():
    table = {"A": 1, "B": 3, "D": 3, "C": 1}
    drop = majority_vote(table, VoteRule(min_agreement=0.0, tie_rule="drop"), num_samples=8)
    assert (drop.label, drop.tied, drop.dropped_because, drop.agreement) == (None, True, "tie", 3 / 8)
    lowest = majority_vote(table, VoteRule(min_agreement=0.0, tie_rule="lowest_letter"), num_samples=8)
    assert (lowest.label, lowest.tied, lowest.kept) == ("B", True, True)


def test_random_tie_break_is_seeded_by_seed_and_question_id():
    table = {"A": 2, "B": 2, "C": 2, "D": 2}
    rule = VoteRule(min_agreement=0.0, tie_rule="random", seed=11)
    picks = {q: majority_vote(table, rule, question_id=q).label for q in (f"q{i}" for i in range(40))}
    # reference: the documented draw, recomputed independently
    assert picks == {q: random.Random(f"11:{q}").choice(["A", "B", "C", "D"]) for q in picks}
    assert picks == {q: majority_vote(table, rule, question_id=q).label for q in picks}   # stable
    assert len(set(picks.values())) == 4                                                    # not biased to A
    other_seed = {q: majority_vote(table, VoteRule(0.0, "drop", "random", seed=12), question_id=q).label for q in picks}
    assert other_seed != picks


def test_a_tie_that_is_resolved_still_faces_tau():
    # B and C tie at 2/8 = 0.25 < 0.5
    table = {"A": 1, "B": 2, "C": 2}
    outcome = majority_vote(table, VoteRule(min_agreement=0.5, tie_rule="lowest_letter"), num_samples=8)
    assert (outcome.label, outcome.dropped_because, outcome.tied) == (None, "below min agreement", True)


def test_no_votes_is_always_dropped():
    for rule in (DROP, VoteRule(0.0, "keep", "lowest_letter")):
        outcome = majority_vote({}, rule, num_samples=8)
        assert (outcome.label, outcome.agreement, outcome.dropped_because) == (None, 0.0, "no votes")


def test_bad_input_is_an_error():
    with pytest.raises(ValueError, match="votes but only num_samples=2"):
        majority_vote({"A": 3}, DROP, num_samples=2, question_id="q1")
    with pytest.raises(ValueError, match="tie_rule='first'"):
        VoteRule(tie_rule="first")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"min_agreement must be in \[0, 1\]"):
        VoteRule(min_agreement=1.5)
