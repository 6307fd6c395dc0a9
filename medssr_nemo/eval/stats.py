"""Uncertainty of benchmark accuracies: 95% intervals over questions, paired tests between two
checkpoints on the same questions, and the minimum detectable difference.

The unit of sampling is the question (a benchmark is a sample of questions from a population of
questions); repeated samples of one question are not independent draws, so every bootstrap here
resamples whole questions and keeps each question's samples together.

Data layout: a correctness matrix ``(num_questions, num_samples)`` of 0/1, rows in question order.

Formulas (the docstring of each function gives its own):

- Wilson score interval (one sample per question): centre ``(p + z²/2n) / (1 + z²/n)``, half-width
  ``z / (1 + z²/n) · sqrt(p(1-p)/n + z²/4n²)``.
- Bootstrap over questions: percentile interval of the resampled statistic, ``B`` resamples, a
  fixed seed so a summary is reproducible. Where it would have no width (every question scored
  the same, e.g. all wrong) the Wilson interval over questions is used instead.
- Averages over benchmarks with one sample per question: MOVER (square-and-add) combination of
  the benchmarks' own intervals, ``m − √Σ((e_i − l_i)/K)²``, ``m + √Σ((u_i − e_i)/K)²``.
- Exact McNemar (one sample per question): with ``b`` questions right only under A and ``c`` only
  under B, ``p = min(1, 2·P[X ≤ min(b, c)])``, ``X ~ Binomial(b + c, 1/2)``.
- Newcombe's hybrid score interval for a paired difference (one sample per question; Newcombe
  1998, method 10): Wilson intervals ``(l₁,u₁)``, ``(l₂,u₂)`` of the two accuracies combined with
  the (continuity-corrected) phi correlation of the 2×2 table, ``θ - √((p₁-l₁)² - 2φ(p₁-l₁)(u₂-p₂) + (u₂-p₂)²)`` and
  ``θ + √((u₁-p₁)² - 2φ(u₁-p₁)(p₂-l₂) + (p₂-l₂)²)``. (A percentile bootstrap of the difference is
  too narrow with few discordant questions and can exclude 0 where McNemar's p is above 0.05.)
- Sign-flip permutation test (several samples): per-question differences ``d_i`` of the sample
  means; under "no difference" each ``d_i`` is as likely to have either sign, so the two-sided
  p-value is the share of the ``2^m`` sign assignments of the ``m`` nonzero ``d_i`` whose
  ``|Σ ± d_i|`` reaches the observed ``|Σ d_i|`` (exact up to 16 nonzero questions, else
  ``(1 + #{|Σ sᵦ d_i| ≥ |Σ d_i|}) / (B + 1)`` over ``B`` random sign vectors). Its smallest
  possible value is ``2 · 0.5^m``. With one sample per question it is exactly McNemar's test.
- Paired interval (several samples): the percentile interval of the question bootstrap of
  ``mean(d)``, widened to the paired t-interval ``d̄ ± t₀.₉₇₅,ₙ₋₁ · s_d/√n`` (the bootstrap is too
  narrow with few questions) and, where every nonzero ``d_i`` has one sign, to the sign-count
  interval ``d̄ · (2L − 1) … d̄`` with ``L`` the Clopper–Pearson lower bound of ``m`` wins in ``m``
  (it contains 0 exactly when the permutation p-value is at least 0.05, ``m < 6``). Where no
  question differs (every ``d_i`` is 0) Newcombe's interval of the table of rounded per-question
  accuracies, as ``accuracy_interval`` falls back to Wilson.
- Minimum detectable difference at two-sided level α and power 1-β:
  ``MDD = (z₁₋α/₂ + z₁₋β) · σ_d / √n`` where ``σ_d`` is the standard deviation of one question's
  difference. Before any comparison (a single run) ``σ_d = √(2·0.25)``, the worst case of two
  evaluations at 50% accuracy; in a paired comparison ``σ_d`` is the observed per-question spread.
  With fewer than ``min_questions_for_significance(α)`` questions no paired test can reach α at all
  (the exact McNemar p-value is at least ``2 · 0.5ⁿ``), and the MDD is reported as undetectable.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
from scipy.stats import binomtest, norm
from scipy.stats import t as student_t

DEFAULT_RESAMPLES = 2000
CONFIDENCE = 0.95


def correctness_matrix(rows: Iterable[Mapping[str, Any]], num_samples: int) -> tuple[list[str], np.ndarray]:
    """Question ids (first-seen order) and their ``(questions, samples)`` 0/1 matrix from
    generation rows (``id``, ``sample``, ``correct``)."""
    order: dict[str, int] = {}
    cells: dict[tuple[str, int], bool] = {}
    for row in rows:
        order.setdefault(str(row["id"]), len(order))
        cells[(str(row["id"]), int(row["sample"]))] = bool(row["correct"])
    matrix = np.zeros((len(order), num_samples), dtype=np.float64)
    for (qid, sample), correct in cells.items():
        if not 0 <= sample < num_samples:
            raise ValueError(f"question {qid}: sample {sample} outside 0..{num_samples - 1}")
        matrix[order[qid], sample] = float(correct)
    missing = len(order) * num_samples - len(cells)
    if missing:
        raise ValueError(f"{missing} (question, sample) pairs have no row; every question needs {num_samples} samples")
    return list(order), matrix


def seed_for(*parts: Any) -> int:
    """A stable seed from names (so one benchmark's resamples do not depend on the others')."""
    return int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:8], "big") >> 1


def wilson_interval(successes: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (as fractions)."""
    if n <= 0:
        raise ValueError("the Wilson interval needs at least one question")
    z = float(norm.ppf(0.5 + confidence / 2))
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def _percentile_interval(values: np.ndarray, confidence: float) -> tuple[float, float]:
    tail = 100 * (1 - confidence) / 2
    lo, hi = np.percentile(values, [tail, 100 - tail])
    return float(lo), float(hi)


def bootstrap_mean_interval(matrix: np.ndarray, resamples: int = DEFAULT_RESAMPLES, seed: int = 0,
                            confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Percentile interval of the accuracy (mean over questions of the per-question mean over
    samples), resampling questions with replacement."""
    per_question = np.asarray(matrix, dtype=np.float64).mean(axis=1)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(per_question), size=(resamples, len(per_question)))
    return _percentile_interval(per_question[idx].mean(axis=1), confidence)


@dataclass(frozen=True)
class Interval:
    """A 95% interval in percent and how it was made."""

    low_pct: float
    high_pct: float
    method: str   # "wilson" | "bootstrap"

    def as_dict(self) -> dict[str, Any]:
        return {"ci95_pct": [self.low_pct, self.high_pct], "ci_method": self.method}


def accuracy_interval(matrix: np.ndarray, resamples: int = DEFAULT_RESAMPLES, seed: int = 0) -> Interval:
    """Wilson for one sample per question, a question bootstrap otherwise."""
    matrix = np.asarray(matrix)
    per_question = matrix.mean(axis=1)
    if matrix.shape[1] == 1 or np.all(per_question == per_question[0]):
        # a bootstrap of identical questions has no width (e.g. all wrong); Wilson on the
        # questions is the honest interval there
        lo, hi = wilson_interval(int(round(per_question.sum())), matrix.shape[0])
        return Interval(100 * lo, 100 * hi, "wilson")
    lo, hi = bootstrap_mean_interval(matrix, resamples, seed)
    return Interval(100 * lo, 100 * hi, "bootstrap")


def mover_mean_interval(estimates: Sequence[float], intervals: Sequence[tuple[float, float]]) -> tuple[float, float]:
    """Interval of the unweighted mean of independent estimates from their own intervals by the
    MOVER (Zou & Donner 2008; Newcombe's square-and-add): ``m ∓ √Σ((e_i − l_i)/K)²`` below and
    ``m + √Σ((u_i − e_i)/K)²`` above."""
    k = len(estimates)
    mean = sum(estimates) / k
    below = math.sqrt(sum(((e - lo) / k) ** 2 for e, (lo, _) in zip(estimates, intervals)))
    above = math.sqrt(sum(((hi - e) / k) ** 2 for e, (_, hi) in zip(estimates, intervals)))
    return mean - below, mean + above


def macro_bootstrap_interval(matrices: Sequence[np.ndarray], resamples: int = DEFAULT_RESAMPLES, seed: int = 0,
                             confidence: float = CONFIDENCE) -> Interval:
    """Interval of the unweighted mean of benchmark accuracies: each resample redraws the
    questions of every benchmark independently (a stratified bootstrap), then averages. With one
    sample per question, or where no benchmark varies across questions (a bootstrap without
    width), the MOVER combination of the benchmarks' own intervals instead."""
    matrices = [np.asarray(m, dtype=np.float64) for m in matrices]
    if all(m.shape[1] == 1 or np.all(m.mean(axis=1) == m.mean(axis=1)[0]) for m in matrices):
        parts = [accuracy_interval(m) for m in matrices]
        lo, hi = mover_mean_interval([100 * float(m.mean()) for m in matrices],
                                     [(p.low_pct, p.high_pct) for p in parts])
        return Interval(max(0.0, lo), min(100.0, hi), "mover")
    rng = np.random.default_rng(seed)
    total = np.zeros(resamples)
    for matrix in matrices:
        per_question = np.asarray(matrix, dtype=np.float64).mean(axis=1)
        idx = rng.integers(0, len(per_question), size=(resamples, len(per_question)))
        total += per_question[idx].mean(axis=1)
    lo, hi = _percentile_interval(total / len(matrices), confidence)
    return Interval(100 * lo, 100 * hi, "bootstrap")


# ------------------------------------------------------------------------------ paired tests
def mcnemar_exact_p(only_a: int, only_b: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts ``b`` (right only under A) and
    ``c`` (right only under B): ``min(1, 2·P[X ≤ min(b, c)])`` with ``X ~ Binomial(b + c, ½)``."""
    n = only_a + only_b
    if n == 0:
        return 1.0
    k = min(only_a, only_b)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n
    return min(1.0, 2 * tail)


@dataclass(frozen=True)
class PairedResult:
    """B minus A on the same questions, in percentage points."""

    num_questions: int
    accuracy_a_pct: float
    accuracy_b_pct: float
    difference_pct: float
    ci95_pct: tuple[float, float]
    p_value: float
    test: str                       # "exact McNemar" | "sign-flip permutation" (+ " (Monte-Carlo)")
    mdd_pct: float | None           # None: no difference is detectable at this size
    only_a: int | None = None       # discordant questions (one sample per question)
    only_b: int | None = None
    ci_method: str = "newcombe"     # how ci95_pct was made (see paired_difference_interval)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["ci95_pct"] = list(self.ci95_pct)
        return out


def paired_comparison(a: np.ndarray, b: np.ndarray, resamples: int = DEFAULT_RESAMPLES, seed: int = 0,
                      alpha: float = 0.05, power: float = 0.8) -> PairedResult:
    """B minus A. One sample per question: exact McNemar p-value, Newcombe's paired score interval.
    Several: sign-flip permutation p-value, ``paired_difference_interval``. Row i of ``a`` and of
    ``b`` is the same question."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"paired comparison needs the same questions: {a.shape[0]} vs {b.shape[0]}")
    n = a.shape[0]
    diff = b.mean(axis=1) - a.mean(axis=1)
    observed = float(diff.mean())
    only_a = only_b = None
    if a.shape[1] == 1 and b.shape[1] == 1:
        both = int(((a[:, 0] == 1) & (b[:, 0] == 1)).sum())
        only_a = int(((a[:, 0] == 1) & (b[:, 0] == 0)).sum())
        only_b = int(((a[:, 0] == 0) & (b[:, 0] == 1)).sum())
        p, test = mcnemar_exact_p(only_a, only_b), "exact McNemar"
        lo, hi = newcombe_paired_interval(both, only_a, only_b, n - both - only_a - only_b)
        method = "newcombe"
    else:
        p, exact = sign_flip_p_value(diff, resamples, seed)
        test = "sign-flip permutation" + ("" if exact else " (Monte-Carlo)")
        lo, hi, method = paired_difference_interval(diff, a.mean(axis=1), resamples, seed)
    spread = float(diff.std())   # population std of per-question differences
    return PairedResult(n, 100 * float(a.mean()), 100 * float(b.mean()), 100 * observed, (100 * lo, 100 * hi), p, test,
                        _mdd(n, spread if spread > 0 else WORST_CASE_SPREAD, alpha, power), only_a, only_b, method)


EXACT_SIGN_FLIPS = 16   # up to 2**16 sign assignments are enumerated; beyond, a Monte-Carlo sample


def sign_flip_p_value(values: np.ndarray, resamples: int = DEFAULT_RESAMPLES, seed: int = 0) -> tuple[float, bool]:
    """Two-sided p-value of "each value is as likely positive as negative" for the statistic
    ``|Σ values|`` (a paired permutation test: swapping A and B on a question flips the sign of
    its difference), and whether it is exact. Zeros cannot flip and are dropped, so the smallest
    possible p-value is ``2 · 0.5^m`` for ``m`` nonzero values."""
    values = np.asarray(values, dtype=np.float64).ravel()
    values = values[values != 0]
    m = len(values)
    if m == 0:
        return 1.0, True
    observed = abs(float(values.sum()))
    tolerance = 1e-9 * float(np.abs(values).sum())   # equal sums that differ only by rounding
    if m <= EXACT_SIGN_FLIPS:
        signs = 1.0 - 2.0 * ((np.arange(2 ** m)[:, None] >> np.arange(m)) & 1)
        return float(np.mean(np.abs(signs @ values) >= observed - tolerance)), True
    rng = np.random.default_rng(seed)
    extreme, chunk = 0, max(1, 2_000_000 // m)        # bounded memory for large benchmarks
    for start in range(0, resamples, chunk):
        signs = rng.choice(np.array([-1.0, 1.0]), size=(min(chunk, resamples - start), m))
        extreme += int((np.abs(signs @ values) >= observed - tolerance).sum())
    return (1 + extreme) / (resamples + 1), False


def paired_difference_interval(diff: np.ndarray, accuracy_a: np.ndarray, resamples: int = DEFAULT_RESAMPLES,
                               seed: int = 0, confidence: float = CONFIDENCE) -> tuple[float, float, str]:
    """Interval (fractions) of the mean of per-question differences ``diff`` and how it was made:
    the percentile question bootstrap, widened to the paired t-interval and, where every nonzero
    difference has one sign, to the sign-count interval (a bootstrap of few questions, or of
    questions that all moved by the same amount, is too narrow or has no width at all). Where no
    question differs, Newcombe's interval of the table of rounded per-question accuracies
    ``accuracy_a`` (A's, equal to B's)."""
    diff = np.asarray(diff, dtype=np.float64)
    n, mean = len(diff), float(diff.mean())
    nonzero = diff[diff != 0]
    if len(nonzero) == 0:
        right = int((np.asarray(accuracy_a) >= 0.5).sum())
        lo, hi = newcombe_paired_interval(right, 0, 0, n - right, confidence)
        return lo, hi, "newcombe (no question differs)"
    rng = np.random.default_rng(seed)
    lo, hi = _percentile_interval(diff[rng.integers(0, n, size=(resamples, n))].mean(axis=1), confidence)
    methods = ["bootstrap"]
    spread = float(diff.std(ddof=1)) if n > 1 else 0.0
    if spread > 0:
        half = float(student_t.ppf(0.5 + confidence / 2, n - 1)) * spread / math.sqrt(n)
        if mean - half < lo or mean + half > hi:
            lo, hi = min(lo, mean - half), max(hi, mean + half)
            methods.append("t")
    if np.all(nonzero > 0) or np.all(nonzero < 0):
        m = len(nonzero)
        low_share = binomtest(m, m).proportion_ci(confidence_level=confidence, method="exact").low
        sign_lo, sign_hi = sorted((mean * (2 * low_share - 1), mean))
        if sign_lo < lo or sign_hi > hi:
            lo, hi = min(lo, sign_lo), max(hi, sign_hi)
            methods.append("sign counts")
    return max(-1.0, lo), min(1.0, hi), " + ".join(methods)


def newcombe_paired_interval(both: int, only_a: int, only_b: int, neither: int,
                             confidence: float = CONFIDENCE) -> tuple[float, float]:
    """95% interval of ``accuracy(B) - accuracy(A)`` (fractions) on paired 0/1 outcomes by
    Newcombe's hybrid score method (method 10 of Newcombe 1998, Stat Med 17:2635)."""
    n = both + only_a + only_b + neither
    p1, p2 = (both + only_b) / n, (both + only_a) / n        # B's and A's accuracy
    l1, u1 = wilson_interval(both + only_b, n, confidence)
    l2, u2 = wilson_interval(both + only_a, n, confidence)
    # phi of the 2x2 table (rows: B right/wrong, columns: A right/wrong), 0 when a margin is empty,
    # with Newcombe's continuity correction of a positive association (A > n/2 -> A - n/2, else 0)
    margins = (both + only_b) * (only_a + neither) * (both + only_a) * (only_b + neither)
    association = both * neither - only_a * only_b
    if association > n / 2:
        association -= n / 2
    elif association >= 0:
        association = 0
    phi = association / math.sqrt(margins) if margins else 0.0
    theta = p1 - p2
    delta = math.sqrt(max(0.0, (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2))
    epsilon = math.sqrt(max(0.0, (u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2))
    return max(-1.0, theta - delta), min(1.0, theta + epsilon)


def paired_macro_comparison(pairs: Sequence[tuple[np.ndarray, np.ndarray]], resamples: int = DEFAULT_RESAMPLES,
                            seed: int = 0) -> dict[str, Any]:
    """B minus A on the unweighted average of benchmarks. p-value: the sign-flip permutation test
    of the average (each question's difference, weighted ``1/(K·n_k)``, flips independently).
    Interval: the square-and-add (MOVER) combination of the benchmarks' own paired intervals and,
    with several samples, also the paired bootstrap stratified by benchmark (each benchmark's
    questions redrawn, the same draw for A and B), whichever reaches further on each side."""
    rng = np.random.default_rng(seed)
    total = np.zeros(resamples)
    observed, weighted = 0.0, []
    for a, b in pairs:
        diff = np.asarray(b, dtype=np.float64).mean(axis=1) - np.asarray(a, dtype=np.float64).mean(axis=1)
        observed += float(diff.mean())
        weighted.append(diff / (len(diff) * len(pairs)))
        total += diff[rng.integers(0, len(diff), size=(resamples, len(diff)))].mean(axis=1)
    observed /= len(pairs)
    parts = [paired_comparison(a, b, resamples, seed=seed + k) for k, (a, b) in enumerate(pairs)]
    lo, hi = mover_mean_interval([p.difference_pct for p in parts], [p.ci95_pct for p in parts])
    method = "square-and-add of the benchmarks' intervals"
    if not all(np.asarray(a).shape[1] == 1 and np.asarray(b).shape[1] == 1 for a, b in pairs):
        boot_lo, boot_hi = _percentile_interval(total / len(pairs), CONFIDENCE)
        lo, hi = min(lo, 100 * boot_lo), max(hi, 100 * boot_hi)
        method += " + stratified bootstrap"
    p, exact = sign_flip_p_value(np.concatenate(weighted), resamples, seed)
    return {"difference_pct": 100 * observed, "ci95_pct": [max(-100.0, lo), min(100.0, hi)], "ci_method": method,
            "p_value": p, "test": "sign-flip permutation" + ("" if exact else " (Monte-Carlo)")}


# ------------------------------------------------------------------------------ detectable size
WORST_CASE_SPREAD = math.sqrt(2 * 0.25)   # sd of one question's difference, two evaluations at 50%


def min_questions_for_significance(alpha: float = 0.05) -> int:
    """The fewest questions for which an exact paired test can reach ``alpha`` at all: the
    smallest n with ``2 · 0.5ⁿ < alpha`` (6 at α = 0.05)."""
    n = 1
    while 2 * 0.5 ** n >= alpha:
        n += 1
    return n


def _mdd(n: int, spread: float, alpha: float, power: float) -> float | None:
    if n < min_questions_for_significance(alpha):
        return None
    z = float(norm.ppf(1 - alpha / 2) + norm.ppf(power))
    return min(100.0, 100 * z * spread / math.sqrt(n))


def minimum_detectable_difference(n: int, alpha: float = 0.05, power: float = 0.8) -> float | None:
    """Percentage points between two checkpoints that a two-sided test at ``alpha`` detects with
    probability ``power`` on ``n`` questions, worst case (both near 50% accuracy, no benefit
    from pairing): ``(z₁₋α/₂ + z₁₋β) · √(2·0.25/n)``. None: nothing is detectable at this size."""
    return _mdd(n, WORST_CASE_SPREAD, alpha, power)


def describe_mdd(mdd_pct: float | None) -> str:
    return "none (too few questions)" if mdd_pct is None else f"{mdd_pct:.1f} pts"
