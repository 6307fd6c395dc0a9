"""Distribution control: plan every question's attributes before generating any, then measure.

The plan is a pure function of (number of questions, target mix, seed):

- rare: for question i a uniform rho_i is drawn from the seeded RNG; rho_i < alpha makes it a
  rare-disease question (the paper's gate), so the rare share is Binomial(n, alpha)/n.
- question type, difficulty and category: exact quotas by largest remainder over the slots they
  apply to (rare slots; difficulty also on non-rare ones when the synthesizer asks), dealt in a
  seeded random order, so the planned mix matches the target to within one question.

Retries of a failed question keep its slot and attributes, so filters do not skew the mix.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

DIMENSIONS = ("category", "question_type", "difficulty")


@dataclass(frozen=True)
class Slot:
    """One planned question."""

    index: int                          # position in the run (record ids derive from it)
    rho: float                          # the gate draw; rare = rho < alpha
    rare: bool
    branch_index: int                   # position among the slots of the same rare flag
    category: str | None = None
    question_type: str | None = None
    difficulty: str | None = None


@dataclass
class Target:
    """The requested mix; weights need not sum to 1 (they are normalised)."""

    alpha: float
    question_types: Mapping[str, float]
    difficulties: Mapping[str, float]
    categories: Mapping[str, float]     # empty: not controlled

    def normalised(self, dimension: str) -> dict[str, float]:
        weights = {"question_type": self.question_types, "difficulty": self.difficulties,
                   "category": self.categories}[dimension]
        total = sum(weights.values())
        return {k: v / total for k, v in weights.items() if v > 0} if total > 0 else {}


def quota(weights: Mapping[str, float], n: int) -> list[str]:
    """``n`` labels in proportion to ``weights`` (largest remainder; ties by the key order given)."""
    total = sum(w for w in weights.values() if w > 0)
    if n == 0 or total <= 0:
        return []
    keys = [k for k, w in weights.items() if w > 0]
    exact = {k: weights[k] / total * n for k in keys}
    counts = {k: math.floor(exact[k]) for k in keys}
    short = n - sum(counts.values())
    for k in sorted(keys, key=lambda k: -(exact[k] - counts[k]))[:short]:
        counts[k] += 1
    return [k for k in keys for _ in range(counts[k])]


def plan_slots(n: int, target: Target, seed: int,
               nonrare_dimensions: Iterable[str] = ()) -> list[Slot]:
    """The deterministic plan of ``n`` questions (see the module docstring)."""
    rng = random.Random(f"medssr-synthesis-plan:{seed}")
    rhos = [rng.random() for _ in range(n)]
    rare_flags = [rho < target.alpha for rho in rhos]
    rare_idx = [i for i in range(n) if rare_flags[i]]
    common_idx = [i for i in range(n) if not rare_flags[i]]
    attrs: dict[int, dict[str, str]] = {i: {} for i in range(n)}
    nonrare_dimensions = set(nonrare_dimensions)
    for dimension in DIMENSIONS:
        weights = target.normalised(dimension)
        if not weights:
            continue
        for indices, applies in ((rare_idx, True), (common_idx, dimension in nonrare_dimensions)):
            if not applies or not indices:
                continue
            labels = quota(weights, len(indices))
            rng.shuffle(labels)
            for i, label in zip(indices, labels):
                attrs[i][dimension] = label
    branch = {i: k for k, i in enumerate(rare_idx)} | {i: k for k, i in enumerate(common_idx)}
    return [Slot(index=i, rho=rhos[i], rare=rare_flags[i], branch_index=branch[i], **attrs[i])
            for i in range(n)]


def total_variation(p: Mapping[str, float], q: Mapping[str, float]) -> float:
    """TV(p, q) = 1/2 * sum_x |p(x) - q(x)|: 0 when equal, 1 when disjoint."""
    keys = set(p) | set(q)
    return 0.5 * sum(abs(p.get(k, 0.0) - q.get(k, 0.0)) for k in keys)


def _shares(values: Sequence[Any]) -> dict[str, float]:
    counts = Counter(values)
    total = sum(counts.values())
    return {str(k): round(v / total, 6) for k, v in sorted(counts.items(), key=lambda kv: str(kv[0]))} if total else {}


def distribution_report(records: Sequence[Any], target: Target, planned: Sequence[Slot] = (),
                        nonrare_dimensions: Iterable[str] = ()) -> dict[str, Any]:
    """Achieved mix of ``records`` next to the target, with the total-variation distance per
    dimension; ``planned`` adds the plan's own mix (what the gate and quotas produced)."""
    nonrare_dimensions = set(nonrare_dimensions)
    rare_share = sum(1 for r in records if r.rare) / len(records) if records else 0.0
    report: dict[str, Any] = {
        "num_records": len(records),
        "rare": {"target": target.alpha, "achieved": round(rare_share, 6),
                 "planned": round(sum(s.rare for s in planned) / len(planned), 6) if planned else None,
                 "tv_distance": round(abs(rare_share - target.alpha), 6)},
    }
    for dimension in DIMENSIONS:
        weights = target.normalised(dimension)
        scope = [r for r in records if r.rare or dimension in nonrare_dimensions]
        achieved = _shares([getattr(r, dimension) for r in scope])
        entry: dict[str, Any] = {"scope": "all" if dimension in nonrare_dimensions else "rare",
                                 "achieved": achieved}
        if weights:
            entry["target"] = {k: round(v, 6) for k, v in weights.items()}
            entry["tv_distance"] = round(total_variation(achieved, weights), 6)
        else:
            entry["target"] = None   # not controlled: the knowledge base's own mix
        report[dimension] = entry
    report["nonrare_achieved"] = {
        d: _shares([getattr(r, d) for r in records if not r.rare]) for d in DIMENSIONS
        if d not in nonrare_dimensions}
    return report
