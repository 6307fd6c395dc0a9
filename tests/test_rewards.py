"""Reward sources: group-aware scoring, weighted composites, routing by label source, and plain
TRL-style functions."""

from __future__ import annotations

import pytest

from medssr_nemo.config import load_config
from medssr_nemo.records import QuestionRecord
from medssr_nemo.rewards.composite import RewardRouter, build_reward_source
from medssr_nemo.rewards.interfaces import GroupCompletions

TEXTS = ["The answer is A", "the answer is b", "I don't know", "The answer is C"]
ANSWERS = ["A", "B", None, "C"]


def _group(**kw):
    record = QuestionRecord(**{**dict(id="q", question="?", options=["a", "b", "c", "d"]), **kw})
    return GroupCompletions(record, "prompt", TEXTS, ANSWERS)


def test_gold_rewards_the_key():
    scored = build_reward_source("gold").score(_group(gold="B"))
    assert scored.rewards == [0, 1, 0, 0] and scored.metrics["accuracy"] == 0.25


def test_pseudo_label_rewards_the_label_and_reports_its_correctness():
    scored = build_reward_source("pseudo_label").score(_group(gold="A", label="C", label_source="pseudo"))
    assert scored.rewards == [0, 0, 0, 1]
    assert scored.metrics["label_is_correct"] == 0.0 and scored.metrics["true_accuracy"] == 0.25


def test_pseudo_label_without_label_is_a_clear_error():
    with pytest.raises(ValueError, match="run `medssr label` first"):
        build_reward_source("pseudo_label").score(_group(gold="A"))


def test_format_pays_only_the_exact_phrase():
    assert build_reward_source("format").score(_group(gold="A")).rewards == [1, 0, 0, 1]


def test_router_picks_terms_by_label_source_and_weights_them():
    cfg = load_config("quickstart")   # gold: gold + 0.5 format; pseudo: pseudo_label + 0.5 format
    router = RewardRouter.from_config(cfg.reward)
    source, scored = router.score(_group(gold="A", label="A", label_source="gold"))
    assert source == "gold" and scored.rewards == [1.5, 0.0, 0.0, 0.5]
    source, scored = router.score(_group(gold="A", label="C", label_source="pseudo"))
    assert source == "pseudo" and scored.rewards == [0.5, 0.0, 0.0, 1.5]


def test_unlabelled_row_with_gold_uses_the_gold_source():
    router = RewardRouter.from_config(load_config("base").reward)
    assert router.score(_group(gold="B"))[0] == "gold"


def test_composite_nests_terms():
    source = build_reward_source("composite", {"terms": [{"name": "gold", "weight": 2.0}, {"name": "format", "weight": 1.0}]})
    assert source.score(_group(gold="A")).rewards == [3.0, 0.0, 0.0, 1.0]


def count_letters(prompts, completions, gold, **columns):
    """A TRL-style reward function: 1 when the completion mentions the gold letter."""
    return [1.0 if g in c else None for c, g in zip(completions, gold)]


def test_plain_callable_from_a_dotted_path():
    source = build_reward_source(f"{__name__}:count_letters")
    assert source.score(_group(gold="C")).rewards == [0.0, 0.0, 0.0, 1.0]   # None counts as 0
