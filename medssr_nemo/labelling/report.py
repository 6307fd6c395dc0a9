"""What a labelling run reports: agreement histogram, share kept and why not, the answer-format
health of the samples, and the accuracy of the pseudo-labels wherever a key is known."""

from __future__ import annotations

from collections import Counter
from typing import Any, Sequence

from medssr_nemo.labelling.vote import VoteOutcome, VoteRule, majority_vote
from medssr_nemo.records import QuestionRecord

SKIPPED_PROMPT_TOO_LONG = "prompt too long"


def not_an_option(answers: Sequence[str | None], letters: Sequence[str]) -> int:
    """Answers read that are not one of the question's letters (no votes, ``labelling.vote``)."""
    return sum(a is not None and a not in letters for a in answers)


def _accuracy(pairs: Sequence[tuple[str | None, str]]) -> dict[str, Any]:
    correct = sum(label == gold for label, gold in pairs)
    return {"with_gold": len(pairs), "correct": correct,
            "accuracy": round(correct / len(pairs), 4) if pairs else None}


def label_report(records: Sequence[QuestionRecord], entries: dict[str, dict[str, Any]],
                 outcomes: dict[str, VoteOutcome]) -> dict[str, Any]:
    """Report over ``records`` given their log ``entries`` and vote ``outcomes`` (by id)."""
    dropped: Counter[str] = Counter()
    histogram: Counter[str] = Counter()
    samples: Counter[str] = Counter()
    kept_pairs, raw_pairs = [], []
    plain_majority = VoteRule(min_agreement=0.0, below_min_agreement="keep", tie_rule="lowest_letter")
    for record in records:
        entry = entries[record.id]
        if entry.get("skipped"):
            dropped[entry["skipped"]] += 1
            continue
        outcome = outcomes[record.id]
        answers = entry["answers"]
        n = len(answers)
        histogram[f"{max(outcome.vote_counts.values(), default=0)}/{n}"] += 1
        samples["total"] += n
        samples["answered"] += sum(a is not None for a in answers)    # any letter read, valid or not
        samples["answers_not_an_option"] += not_an_option(answers, record.letters)
        samples["free_answer"] += sum(a is not None for a in entry["free_answers"])
        samples["recovered"] += sum(entry["recovered"])
        samples["follows_format"] += sum(entry["follows_format"])
        samples["truncated"] += sum(r == "length" for r in entry["finish_reasons"])
        if not outcome.kept:
            dropped[outcome.dropped_because or "?"] += 1
        if record.gold is not None:
            if outcome.kept:
                kept_pairs.append((outcome.label, record.gold))
            # the plain majority before tau and tie dropping: shows what the filters buy
            raw = majority_vote(outcome.vote_counts, plain_majority, num_samples=n, question_id=record.id)
            raw_pairs.append((raw.label, record.gold))
    kept = sum(o.kept for o in outcomes.values())
    total = len(records)
    return {
        "questions": total,
        "labelled": kept,
        "fraction_kept": round(kept / total, 4) if total else None,
        "dropped": dict(sorted(dropped.items())),
        "agreement_histogram": dict(sorted(histogram.items(), key=lambda kv: _ratio(kv[0]))),
        "samples": dict(samples),
        "sample_rates": {k: round(samples[k] / samples["total"], 4)
                         for k in ("answered", "answers_not_an_option", "free_answer", "recovered", "follows_format",
                                   "truncated")}
        if samples["total"] else {},
        "accuracy_vs_gold": {"labelled": _accuracy(kept_pairs), "plain_majority_all": _accuracy(raw_pairs)},
    }


def _ratio(key: str) -> tuple[int, int]:
    top, n = key.split("/")
    return int(n), int(top)
