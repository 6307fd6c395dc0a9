"""Stage-1 collapse monitor: pseudo-label reward vs the knowledge-base key's reward, per step,
checked against counts worked by hand, and shown in the run report."""

from __future__ import annotations

import json

import pytest

from medssr_nemo.grpo.collapse import CollapseMonitor, has_knowledge_key
from medssr_nemo.records import QuestionRecord


def _q(qid: str, label: str, gold: str | None, origin: str = "knowledge", source: str = "pseudo") -> QuestionRecord:
    return QuestionRecord(id=qid, question="Which?", options=["a", "b", "c", "d"], gold=gold, label=label,
                          label_source=source, meta={"origin": origin})


def test_agreement_self_agreement_and_drift_match_hand_counts():
    right = _q("right", label="A", gold="A")        # pseudo label equals the key
    wrong = _q("wrong", label="B", gold="A")        # pseudo label is wrong
    seed = _q("seed", label="C", gold="C", origin="seed")    # no knowledge-base key: not monitored
    monitor = CollapseMonitor()
    texts = [["The answer is A", "The answer is C"],      # right: rewards (1,1) (0,0) -> agree 2
             ["The answer is B", "The answer is A"],      # wrong: (1,0) (0,1) -> agree 0
             ["The answer is C", "The answer is C"]]
    first = monitor.update([right, wrong, seed], texts)
    assert first["collapse/questions"] == 2
    assert first["collapse/reward_agreement"] == pytest.approx(2 / 4)
    assert first["collapse/self_agreement"] == pytest.approx(2 / 4)    # A on right, B on wrong
    assert first["collapse/key_accuracy"] == pytest.approx(2 / 4)
    assert first["collapse/self_agreement_drift"] == 0.0
    # the policy sharpens onto its (wrong) label: self-agreement up, key accuracy down
    later = monitor.update([right, wrong], [["The answer is A", "The answer is A"], ["The answer is B"] * 2])
    assert later["collapse/self_agreement"] == 1.0 and later["collapse/key_accuracy"] == pytest.approx(0.5)
    assert later["collapse/reward_agreement"] == pytest.approx(0.5)
    assert later["collapse/self_agreement_drift"] == pytest.approx(0.5)
    assert monitor.update([seed], [["The answer is C"]]) == {}


def test_only_pseudo_labelled_questions_with_a_knowledge_base_key_count():
    assert has_knowledge_key(_q("a", "A", "A"))
    assert not has_knowledge_key(_q("b", "A", "A", source="gold"))
    assert not has_knowledge_key(_q("c", "A", None))
    assert not has_knowledge_key(_q("d", "A", "A", origin="generator"))
    llm = _q("e", "A", "A", origin="generator")
    llm.meta["key_source"] = "knowledge base"
    assert has_knowledge_key(llm)


def test_run_report_shows_the_collapse_monitor(tmp_path):
    from medssr_nemo.pipeline.report import training_section

    rows = [{"step": s, "reward/mean": 0.5, "collapse/reward_agreement": 0.9 - 0.1 * s,
             "collapse/self_agreement": 0.5 + 0.1 * s, "collapse/key_accuracy": 0.5,
             "collapse/self_agreement_drift": 0.1 * s} for s in range(1, 5)]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    section = training_section(tmp_path)
    assert section["collapse"]["steps_monitored"] == 4
    assert section["collapse"]["first_quarter"]["collapse/reward_agreement"] == pytest.approx(0.8)
    assert section["collapse"]["last_quarter"]["collapse/self_agreement_drift"] == pytest.approx(0.4)
    assert "collapse" not in training_section(tmp_path / "missing")


def test_key_accuracy_carries_a_wilson_interval_over_the_questions(tmp_path):
    from statsmodels.stats.proportion import proportion_confint

    from medssr_nemo.pipeline.report import collapse_lines, training_section

    # 8 monitored steps of 4 keyed questions; key accuracy 0.25 at first, 0.5 in the last quarter
    rows = [{"step": s, "reward/mean": 0.5, "collapse/questions": 4, "collapse/reward_agreement": 0.9,
             "collapse/self_agreement": 0.6, "collapse/key_accuracy": 0.25 if s <= 6 else 0.5,
             "collapse/self_agreement_drift": 0.0} for s in range(1, 9)]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    collapse = training_section(tmp_path)["collapse"]
    last = proportion_confint(4, 8, alpha=0.05, method="wilson")      # 2 steps x 4 questions, half right
    first = proportion_confint(2, 8, alpha=0.05, method="wilson")
    assert collapse["key_accuracy_ci95"]["last_quarter"] == [pytest.approx(last[0]), pytest.approx(last[1])]
    assert collapse["key_accuracy_ci95"]["first_quarter"] == [pytest.approx(first[0]), pytest.approx(first[1])]
    row = [line for line in collapse_lines({"stage1": {"collapse": collapse}}) if line.startswith("| stage1 |")]
    assert row == [f"| stage1 | 8 | 0.90 → 0.90 | 0.60 → 0.60 | 0.25 → 0.50 [{last[0]:.2f}, {last[1]:.2f}] | 0.000 |"]
