"""Intervals, paired tests and the minimum detectable difference, checked against hand-worked
numbers and independent implementations (statsmodels, scipy)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import binomtest, norm, permutation_test
from scipy.stats import t as student_t
from scipy.stats import bootstrap as scipy_bootstrap
from statsmodels.stats.contingency_tables import mcnemar as statsmodels_mcnemar
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import proportion_confint

from medssr_nemo.eval import stats


@pytest.mark.parametrize("successes,n", [(0, 4), (4, 4), (1, 4), (37, 100), (612, 1273), (3, 7)])
def test_wilson_interval_matches_statsmodels(successes, n):
    lo, hi = stats.wilson_interval(successes, n)
    ref_lo, ref_hi = proportion_confint(successes, n, alpha=0.05, method="wilson")
    assert (lo, hi) == (pytest.approx(ref_lo, abs=1e-9), pytest.approx(ref_hi, abs=1e-9))


def test_wilson_upper_bound_for_no_successes_is_z2_over_n_plus_z2():
    z2 = 1.959963984540054 ** 2
    assert stats.wilson_interval(0, 4) == (0.0, pytest.approx(z2 / (4 + z2)))   # 0.4899, worked by hand


@pytest.mark.parametrize("only_a,only_b", [(1, 5), (0, 6), (0, 5), (2, 9), (9, 2), (30, 45), (0, 0), (7, 7)])
def test_exact_mcnemar_matches_scipy_binomtest_and_statsmodels(only_a, only_b):
    p = stats.mcnemar_exact_p(only_a, only_b)
    if only_a + only_b:
        assert p == pytest.approx(binomtest(min(only_a, only_b), only_a + only_b, 0.5).pvalue, rel=1e-12)
    table = [[10, only_a], [only_b, 10]]
    assert p == pytest.approx(statsmodels_mcnemar(table, exact=True).pvalue, rel=1e-12)


def test_exact_mcnemar_hand_worked():
    assert stats.mcnemar_exact_p(1, 5) == pytest.approx(2 * 7 / 64)    # 2·(C(6,0)+C(6,1))/2⁶
    assert stats.mcnemar_exact_p(0, 0) == 1.0


def test_fewest_questions_that_can_reach_significance():
    assert stats.min_questions_for_significance(0.05) == 6
    assert binomtest(0, 5, 0.5).pvalue >= 0.05 > binomtest(0, 6, 0.5).pvalue


def test_accuracy_interval_uses_wilson_for_one_sample():
    matrix = np.array([[1], [0], [1], [1], [0], [0], [0], [1], [1], [1]])
    interval = stats.accuracy_interval(matrix)
    lo, hi = proportion_confint(6, 10, method="wilson")
    assert interval.method == "wilson"
    assert (interval.low_pct, interval.high_pct) == (pytest.approx(100 * lo), pytest.approx(100 * hi))


def test_bootstrap_keeps_each_questions_samples_together():
    # 100 questions, 4 identical samples each: the information is 100 questions, not 400 draws,
    # so the interval must be as wide as a 100-question one (±9.8 pts at 50%), not ±4.9.
    matrix = np.repeat(np.array([1.0] * 50 + [0.0] * 50)[:, None], 4, axis=1)
    interval = stats.accuracy_interval(matrix, resamples=4000, seed=1)
    assert interval.method == "bootstrap"
    half = (interval.high_pct - interval.low_pct) / 2
    assert half == pytest.approx(100 * 1.96 * math.sqrt(0.25 / 100), abs=1.0)


def test_bootstrap_interval_agrees_with_scipy_percentile_bootstrap():
    rng = np.random.default_rng(3)
    matrix = (rng.random((300, 4)) < rng.random(300)[:, None]).astype(float)   # question difficulty varies
    lo, hi = stats.bootstrap_mean_interval(matrix, resamples=4000, seed=0)
    ref = scipy_bootstrap((matrix.mean(axis=1),), np.mean, n_resamples=4000, method="percentile",
                          confidence_level=0.95, random_state=1).confidence_interval
    assert lo == pytest.approx(ref.low, abs=0.01) and hi == pytest.approx(ref.high, abs=0.01)


def test_bootstrap_of_a_constant_benchmark_has_no_width():
    assert stats.bootstrap_mean_interval(np.ones((5, 4))) == (1.0, 1.0)


def test_macro_interval_is_around_the_mean_of_benchmark_accuracies():
    a = np.repeat(np.array([1.0] * 30 + [0.0] * 70)[:, None], 2, axis=1)   # 30 %
    b = np.repeat(np.array([1.0] * 80 + [0.0] * 20)[:, None], 2, axis=1)   # 80 %
    interval = stats.macro_bootstrap_interval([a, b], resamples=4000, seed=0)
    # sd of the macro mean: ½·sqrt(.3·.7/100 + .8·.2/100) = 3.04 pts
    assert interval.low_pct == pytest.approx(55 - 1.96 * 3.04, abs=1.0)
    assert interval.high_pct == pytest.approx(55 + 1.96 * 3.04, abs=1.0)


def test_paired_comparison_one_sample_uses_exact_mcnemar_on_the_discordant_questions():
    # 40 questions: both right on 10, A only on 2, B only on 9, both wrong on 19
    a = np.array([1] * 10 + [1] * 2 + [0] * 9 + [0] * 19)[:, None]
    b = np.array([1] * 10 + [0] * 2 + [1] * 9 + [0] * 19)[:, None]
    result = stats.paired_comparison(a, b)
    assert (result.only_a, result.only_b, result.test) == (2, 9, "exact McNemar")
    assert result.difference_pct == pytest.approx(100 * 7 / 40)
    assert result.p_value == pytest.approx(binomtest(2, 11, 0.5).pvalue)   # 0.0654
    assert result.ci95_pct[0] < result.difference_pct < result.ci95_pct[1]


def test_questions_that_all_gain_the_same_get_an_interval_with_width():
    # every question gains exactly 1 of 4 samples: +25 pts with no spread, so the question
    # bootstrap has no width; the sign-count interval (50 wins of 50, Clopper-Pearson lower
    # bound 0.025^(1/50)) gives it one, below the observed gain and above 0 (p is tiny)
    a = np.tile([1, 0, 0, 0], (50, 1))
    b = np.tile([1, 1, 0, 0], (50, 1))
    result = stats.paired_comparison(a, b, resamples=999)
    assert result.test == "sign-flip permutation (Monte-Carlo)"
    assert result.ci95_pct == (pytest.approx(25 * (2 * 0.025 ** (1 / 50) - 1)), pytest.approx(25.0))
    assert 20 < result.ci95_pct[0] < 22
    assert result.p_value == pytest.approx(1 / 1000)   # no random sign vector reaches +25: (1 + 0) / (999 + 1)
    # gains and losses that cancel: no evidence at all
    c = np.vstack([np.tile([1, 1, 0, 0], (25, 1)), np.tile([0, 0, 0, 0], (25, 1))])
    d = np.vstack([np.tile([1, 1, 1, 1], (25, 1)), np.tile([0, 0, 0, 0], (25, 1))])
    e = np.vstack([np.tile([0, 0, 0, 0], (25, 1)), np.tile([1, 1, 0, 0], (25, 1))])
    assert stats.paired_comparison(c, d).p_value < 0.001
    assert stats.paired_comparison(c, e).p_value == pytest.approx(1.0)


def test_three_questions_with_four_samples_cannot_be_significant():
    # 3 questions each gaining 2 of 4 samples: of the 2³ sign assignments only all-plus and
    # all-minus reach |Σd| = 1.5, so p = 2/8; the interval has width and contains 0
    a = np.zeros((3, 4))
    b = np.tile([1, 1, 0, 0], (3, 1))
    result = stats.paired_comparison(a, b)
    assert result.test == "sign-flip permutation"
    assert result.p_value == pytest.approx(0.25) and result.p_value >= 0.05
    lo, hi = result.ci95_pct
    assert lo < 0 < hi and hi - lo > 10 and result.mdd_pct is None
    assert lo == pytest.approx(50 * (2 * 0.025 ** (1 / 3) - 1))        # Clopper-Pearson lower bound of 3 in 3


def test_four_uneven_questions_cannot_be_significant_and_the_interval_says_so():
    a = np.zeros((4, 4))
    b = np.array([[1, 1, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0], [1, 1, 1, 0]])   # d = .5, .5, .75, .75
    result = stats.paired_comparison(a, b)
    assert result.p_value == pytest.approx(2 / 16)
    assert result.ci95_pct[0] < 0 < result.ci95_pct[1]
    d = np.array([0.5, 0.5, 0.75, 0.75])
    t_high = d.mean() + student_t.ppf(0.975, 3) * d.std(ddof=1) / 2   # the paired t-interval's upper end
    assert result.ci95_pct[1] == pytest.approx(100 * t_high)


@pytest.mark.parametrize("d", [
    [0.5, 0.5, 0.75, -0.25, 0.25, 0.0, 1.0],
    [0.25, -0.5, 0.75, -0.25, 0.5, 0.5, 0.25, 0.75, -1.0, 0.5],
    [0.5, 0.5, 0.5],
])
def test_exact_sign_flip_p_value_matches_scipy_permutation_test(d):
    ref = permutation_test((np.array(d),), np.mean, permutation_type="samples", n_resamples=np.inf,
                           alternative="two-sided").pvalue
    p, exact = stats.sign_flip_p_value(np.array(d))
    assert exact and p == pytest.approx(ref, rel=1e-9)


def test_sign_flip_p_value_hand_worked_and_its_floor():
    # d = (1, 1, -0.5): of the 8 sign assignments, |Σ| ≥ 1.5 for (+,+,±) and (-,-,±): p = 4/8
    assert stats.sign_flip_p_value(np.array([1.0, 1.0, -0.5])) == (0.5, True)
    for m in range(1, 9):   # m questions all moving the same way: the smallest p there is, 2·0.5^m
        assert stats.sign_flip_p_value(np.linspace(0.25, 1.0, m))[0] == pytest.approx(2 * 0.5 ** m)
    assert stats.sign_flip_p_value(np.zeros(5)) == (1.0, True)


def test_sign_flip_with_one_sample_is_mcnemar():
    d = np.array([1.0] * 9 + [-1.0] * 2 + [0.0] * 29)
    assert stats.sign_flip_p_value(d)[0] == pytest.approx(stats.mcnemar_exact_p(2, 9))


def test_monte_carlo_sign_flip_agrees_with_the_exact_one():
    rng = np.random.default_rng(4)
    d = rng.choice([-0.5, -0.25, 0.25, 0.5, 0.75], size=16)
    exact, _ = stats.sign_flip_p_value(d)
    stats_before = stats.EXACT_SIGN_FLIPS
    try:
        stats.EXACT_SIGN_FLIPS = 10
        sampled, is_exact = stats.sign_flip_p_value(d, resamples=20000, seed=1)
    finally:
        stats.EXACT_SIGN_FLIPS = stats_before
    assert not is_exact and sampled == pytest.approx(exact, abs=0.01)


def test_sign_flip_p_value_is_close_to_the_normal_approximation():
    rng = np.random.default_rng(0)
    rows = {-1.0: ([1, 1], [0, 0]), -0.5: ([1, 0], [0, 0]), 0.0: ([1, 0], [1, 0]), 0.5: ([0, 0], [1, 0]), 1.0: ([0, 0], [1, 1])}
    diff = rng.choice(list(rows), p=[0.13, 0.17, 0.37, 0.18, 0.15], size=400)
    a = np.array([rows[x][0] for x in diff], dtype=float)                 # two samples: the permutation path
    b = np.array([rows[x][1] for x in diff], dtype=float)
    result = stats.paired_comparison(a, b, resamples=4000)
    z = diff.sum() / math.sqrt((diff ** 2).sum())          # the sign-flip null: mean 0, variance Σd²
    assert 0.001 < result.p_value < 0.5
    assert result.p_value == pytest.approx(2 * (1 - norm.cdf(abs(z))), abs=0.01)


def test_minimum_detectable_difference_matches_statsmodels_power():
    for n in (50, 200, 1273):
        effect = NormalIndPower().solve_power(effect_size=None, nobs1=n, alpha=0.05, power=0.8, ratio=1.0)
        assert stats.minimum_detectable_difference(n) == pytest.approx(100 * 0.5 * effect, rel=1e-3)
    assert stats.minimum_detectable_difference(100) == pytest.approx(19.81, abs=0.01)   # 2.8016·√(0.5/100)


def test_a_few_questions_detect_nothing():
    assert stats.minimum_detectable_difference(4) is None
    assert stats.describe_mdd(None).startswith("none")
    tiny = stats.paired_comparison(np.zeros((4, 1)), np.ones((4, 1)))
    assert tiny.mdd_pct is None and tiny.p_value == pytest.approx(0.125)   # 4 of 4 flipped: still p = 2/16


def test_newcombe_paired_interval_matches_the_published_example():
    # Cavo et al. (2012) complete response before/after consolidation, the paired 2x2 table
    # [[59, 6], [16, 80]]; Fagerland, Lydersen & Laake (Statistical Analysis of Contingency
    # Tables, ch. 8) give -0.0621 (95% CI -0.1186 to -0.0046) for Newcombe's square-and-add.
    lo, hi = stats.newcombe_paired_interval(both=59, only_a=16, only_b=6, neither=80)
    assert (round(lo, 4), round(hi, 4)) == (-0.1186, -0.0046)


def test_newcombe_interval_covers_the_true_difference_about_95_percent_of_the_time():
    rng = np.random.default_rng(0)
    probs = [0.25, 0.05, 0.2, 0.5]           # both, only A, only B, neither
    true = probs[2] - probs[1]
    hits = sum(lo <= true <= hi for lo, hi in (stats.newcombe_paired_interval(*rng.multinomial(40, probs))
                                               for _ in range(2000)))
    assert 0.93 <= hits / 2000 <= 0.98


def test_an_all_wrong_benchmark_still_has_an_interval():
    # a bootstrap of identical questions has no width; four samples of 5 all-wrong questions
    interval = stats.accuracy_interval(np.zeros((5, 4)))
    assert interval.method == "wilson" and interval.high_pct == pytest.approx(100 * proportion_confint(0, 5, method="wilson")[1])


def test_macro_interval_with_one_sample_combines_the_wilson_intervals():
    a, b = np.zeros((2, 1)), np.array([[1.0], [0.0], [1.0], [1.0]])
    interval = stats.macro_bootstrap_interval([a, b])
    (la, ua), (lb, ub) = (proportion_confint(0, 2, method="wilson"), proportion_confint(3, 4, method="wilson"))
    mean = (0.0 + 0.75) / 2   # square-and-add, worked from the two Wilson intervals
    assert interval.method == "mover"
    assert interval.low_pct == pytest.approx(100 * (mean - math.hypot((0 - la) / 2, (0.75 - lb) / 2)))
    assert interval.high_pct == pytest.approx(100 * (mean + math.hypot((ua - 0) / 2, (ub - 0.75) / 2)))


def test_paired_average_of_identical_checkpoints_is_not_a_zero_width_interval():
    a = [np.zeros((2, 1)), np.zeros((2, 1))]
    result = stats.paired_macro_comparison(list(zip(a, a)))
    assert result["difference_pct"] == 0.0 and result["p_value"] == 1.0
    assert result["ci95_pct"][0] < -10 and result["ci95_pct"][1] > 10
    four = [np.tile([1.0, 0, 0, 0], (3, 1))] * 2                       # several samples, no question differs
    several = stats.paired_macro_comparison(list(zip(four, four)))
    assert several["p_value"] == 1.0 and several["ci95_pct"][0] < -10 and several["ci95_pct"][1] > 10


def test_paired_average_of_few_questions_is_not_significant():
    # two benchmarks of 2 questions, every question gaining 2 of 4: 4 differing questions in all,
    # so the permutation test of the average gives 2/16 and the interval reaches below 0
    a = [np.zeros((2, 4))] * 2
    b = [np.tile([1.0, 1, 0, 0], (2, 1))] * 2
    result = stats.paired_macro_comparison(list(zip(a, b)))
    assert result["difference_pct"] == pytest.approx(50.0)
    assert result["p_value"] == pytest.approx(2 / 16) and result["test"] == "sign-flip permutation"
    assert result["ci95_pct"][0] < 0 < result["ci95_pct"][1]
