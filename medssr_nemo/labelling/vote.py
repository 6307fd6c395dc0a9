"""Majority vote over sampled answers: pure functions of the vote table.

``agreement = top votes / samples``. The denominator is the number of samples, not of valid
votes: a sample that gave no answer (possible only with the constrained re-decode switched off)
is a sample that did not agree, so 3 votes for B out of 8 samples is agreement 0.375 whatever the
other five did. An answer that is not one of the question's letters (the paper's reader reads
"The answer is I think B" as I, and does not re-decode it) is no vote either: our choice, since
a label must be one of the options (the paper's labelling code is not public).

Rules, applied in this order:

1. no valid vote at all -> dropped (``no votes``);
2. a tie for the top count -> ``tie_rule``: ``drop`` (``tie``), ``lowest_letter`` (the first of
   the tied letters in alphabetical order: deterministic and the same on every run, but biased
   toward early letters), or ``random`` (one of the tied letters drawn with ``random.Random``
   seeded by ``"<seed>:<question id>"``: unbiased, and still the same on every run and machine);
3. agreement below ``min_agreement`` (tau) -> ``below_min_agreement``: ``drop``
   (``below min agreement``) or ``keep`` (the label stands; the agreement is stored with it).
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable, Literal, Mapping

TieRule = Literal["drop", "lowest_letter", "random"]
LowAgreementRule = Literal["drop", "keep"]


@dataclass(frozen=True)
class VoteRule:
    min_agreement: float = 0.5
    below_min_agreement: LowAgreementRule = "drop"
    tie_rule: TieRule = "drop"
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_agreement <= 1.0:
            raise ValueError(f"min_agreement must be in [0, 1], got {self.min_agreement}")
        if self.below_min_agreement not in ("drop", "keep"):
            raise ValueError(f"below_min_agreement={self.below_min_agreement!r}; allowed: 'drop', 'keep'")
        if self.tie_rule not in ("drop", "lowest_letter", "random"):
            raise ValueError(f"tie_rule={self.tie_rule!r}; allowed: 'drop', 'lowest_letter', 'random'")


@dataclass(frozen=True)
class VoteOutcome:
    label: str | None                   # the pseudo label, None when the question is dropped
    agreement: float                    # votes for the top letter / samples
    vote_counts: dict[str, int] = field(default_factory=dict)
    tied: bool = False                  # several letters shared the top count
    dropped_because: str | None = None  # "no votes" | "tie" | "below min agreement" | None (kept)

    @property
    def kept(self) -> bool:
        return self.dropped_because is None


def count_votes(answers: Iterable[str | None], letters: Iterable[str] | None = None) -> dict[str, int]:
    """Letter -> votes, letters in alphabetical order; ``None`` (no answer) is not a vote, nor,
    when the question's ``letters`` are given, an answer outside them."""
    allowed = None if letters is None else set(letters)
    counts = Counter(a for a in answers if a is not None and (allowed is None or a in allowed))
    return {letter: counts[letter] for letter in sorted(counts)}


def majority_vote(vote_counts: Mapping[str, int], rule: VoteRule, num_samples: int | None = None,
                  question_id: str = "") -> VoteOutcome:
    """Apply ``rule`` to one question's vote table (see the module docstring).

    ``num_samples`` defaults to the number of votes; it must not be smaller.
    """
    counts = {letter: int(n) for letter, n in sorted(vote_counts.items()) if n > 0}
    votes = sum(counts.values())
    total = votes if num_samples is None else num_samples
    if total < votes:
        raise ValueError(f"question {question_id!r}: {votes} votes but only num_samples={num_samples}")
    if votes == 0:
        return VoteOutcome(None, 0.0, counts, dropped_because="no votes")
    top = max(counts.values())
    leaders = [letter for letter, n in counts.items() if n == top]
    agreement = top / total
    tied = len(leaders) > 1
    if not tied:
        label = leaders[0]
    elif rule.tie_rule == "drop":
        return VoteOutcome(None, agreement, counts, tied=True, dropped_because="tie")
    elif rule.tie_rule == "lowest_letter":
        label = leaders[0]
    else:
        label = random.Random(f"{rule.seed}:{question_id}").choice(leaders)
    if agreement < rule.min_agreement and rule.below_min_agreement == "drop":
        return VoteOutcome(None, agreement, counts, tied=tied, dropped_because="below min agreement")
    return VoteOutcome(label, agreement, counts, tied=tied)
