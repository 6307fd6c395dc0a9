"""GRPO math against numbers worked by hand (the arithmetic is in the comments)."""

from __future__ import annotations

import math

import pytest
import torch

from medssr_nemo.config import load_config
from medssr_nemo.config.loader import ConfigError
from medssr_nemo.config.schema import GRPOConfig
from medssr_nemo.grpo.advantages import (ADVANTAGE_ESTIMATORS, get_advantage_estimator, group_advantages,
                                         zero_std_fraction)
from medssr_nemo.grpo.losses import AGGREGATIONS, POLICY_LOSSES, aggregate, kl_penalty, make_grpo_loss, ppo_clip_loss
from medssr_nemo.policy.loss_contract import MAX_RESPONSE_LEN, NUM_SEQS, NUM_TOKENS, local_normalisers

D = torch.float64

# Two interleaved groups, ids 7 and 3 (never adjacent, never sorted):
#   group 7: rewards 1, 0, 0, 1   mean 0.5, deviations +-0.5, sum of squares 1
#            unbiased std = sqrt(1/3) = 0.5773503, biased std = sqrt(1/4) = 0.5
#   group 3: rewards 2, 4, 6      mean 4, deviations -2, 0, 2, sum of squares 8
#            unbiased std = sqrt(8/2) = 2,      biased std = sqrt(8/3) = 1.6329932
IDS = torch.tensor([7, 3, 7, 3, 7, 7, 3])
REWARDS = torch.tensor([1.0, 2.0, 0.0, 4.0, 0.0, 1.0, 6.0], dtype=D)


def test_group_advantages_unbiased_std_by_hand():
    adv = group_advantages(REWARDS, IDS, normalize_std=True, unbiased=True, eps=0.0)
    a = 0.5 / math.sqrt(1 / 3)  # 0.8660254
    expected = torch.tensor([a, -1.0, -a, 0.0, -a, a, 1.0], dtype=D)
    torch.testing.assert_close(adv, expected)


def test_group_advantages_biased_std_by_hand():
    adv = group_advantages(REWARDS, IDS, normalize_std=True, unbiased=False, eps=0.0)
    b = 2.0 / math.sqrt(8 / 3)  # 1.2247449
    expected = torch.tensor([1.0, -b, -1.0, 0.0, -1.0, 1.0, b], dtype=D)
    torch.testing.assert_close(adv, expected)


def test_group_advantages_eps_enters_denominator():
    eps = 0.25
    adv = group_advantages(REWARDS, IDS, unbiased=False, eps=eps)
    # group 7: 0.5 / (0.5 + 0.25) = 2/3; group 3: 2 / (1.6329932 + 0.25) = 1.0621
    assert adv[0].item() == pytest.approx(2 / 3)
    assert adv[6].item() == pytest.approx(2 / (math.sqrt(8 / 3) + 0.25))


def test_group_advantages_without_std_is_centred_reward():
    adv = group_advantages(REWARDS, IDS, normalize_std=False)
    expected = torch.tensor([0.5, -2.0, -0.5, 0.0, -0.5, 0.5, 2.0], dtype=D)
    torch.testing.assert_close(adv, expected)


def test_equal_reward_groups_get_exactly_zero_and_a_singleton_takes_mean_0_std_1():
    # group 5 has one row; group 9 has three equal rewards 0.1 (their float mean is not exactly 0.1)
    rewards = torch.tensor([1.0, 0.3, 0.1, 0.0, 0.1, 0.1], dtype=torch.float32)
    ids = torch.tensor([2, 5, 9, 2, 9, 9])
    adv = group_advantages(rewards, ids)
    assert adv.dtype == torch.float32
    assert adv[[2, 4, 5]].tolist() == [0.0, 0.0, 0.0]
    # verl 0.3.1: a group of one has mean 0 and std 1, so A = 0.3 / (1 + 1e-6)
    assert adv[1].item() == pytest.approx(0.3 / (1 + 1e-6), rel=1e-7)
    assert group_advantages(rewards, ids, eps=0.5)[1].item() == pytest.approx(0.2)   # 0.3 / 1.5
    assert group_advantages(rewards, ids, normalize_std=False)[1].item() == pytest.approx(0.3)
    # group 2: rewards 1, 0; mean 0.5; unbiased std sqrt(0.5/1) = 0.7071 -> +-0.7071
    assert adv[0].item() == pytest.approx(0.5 / math.sqrt(0.5), rel=1e-5)
    assert adv[3].item() == pytest.approx(-0.5 / math.sqrt(0.5), rel=1e-5)
    # groups 2, 5, 9: 5 (size 1) and 9 (all equal) are zero-std -> 2 of 3
    assert zero_std_fraction(rewards, ids) == pytest.approx(2 / 3)


def test_equal_prompts_with_different_ids_are_different_groups():
    rewards = torch.tensor([1.0, 0.0, 1.0, 1.0])
    together = group_advantages(rewards, torch.tensor([0, 0, 0, 0]))
    apart = group_advantages(rewards, torch.tensor([0, 0, 1, 1]))
    assert together[2].item() > 0 and apart[2].item() == 0.0


# RLOO by hand on the same two groups: A_i = r_i - mean of the others
#   group 7 (1, 0, 0, 1): 1 - 1/3 = 2/3, 0 - 2/3 = -2/3;  group 3 (2, 4, 6): 2 - 5 = -3, 4 - 4 = 0, 6 - 3 = 3
def test_rloo_subtracts_the_mean_of_the_other_rollouts():
    adv = get_advantage_estimator("rloo")(REWARDS, IDS, GRPOConfig())
    expected = torch.tensor([2 / 3, -3.0, -2 / 3, 0.0, -2 / 3, 2 / 3, 3.0], dtype=D)
    torch.testing.assert_close(adv, expected)
    # a group of one has no other rollout: baseline 0 (verl 0.3.1), so A = r
    single = get_advantage_estimator("rloo")(torch.tensor([0.7, 1.0, 0.0]), torch.tensor([4, 1, 1]), GRPOConfig())
    torch.testing.assert_close(single, torch.tensor([0.7, 1.0, -1.0]))


def test_dr_grpo_is_the_centred_reward_whatever_normalize_std_says():
    adv = get_advantage_estimator("dr_grpo")(REWARDS, IDS, GRPOConfig(normalize_std=True))
    torch.testing.assert_close(adv, torch.tensor([0.5, -2.0, -0.5, 0.0, -0.5, 0.5, 2.0], dtype=D))


def test_the_config_selects_the_grpo_estimator_with_its_std_settings():
    cfg = GRPOConfig(std_unbiased=False, advantage_eps=0.0)
    adv = get_advantage_estimator(cfg.advantage_estimator)(REWARDS, IDS, cfg)
    torch.testing.assert_close(adv, group_advantages(REWARDS, IDS, unbiased=False, eps=0.0))


def test_advantage_registry_and_bad_inputs():
    assert {"grpo", "rloo", "dr_grpo"} <= set(ADVANTAGE_ESTIMATORS)
    with pytest.raises(ConfigError, match="grpo.advantage_estimator='gae'.*dr_grpo"):
        load_config("base", ["grpo.advantage_estimator=gae"])
    with pytest.raises(KeyError, match="unknown advantage estimator 'gae'"):
        get_advantage_estimator("gae")
    with pytest.raises(ValueError, match="group_ids must have shape"):
        group_advantages(torch.zeros(3), torch.zeros(2, dtype=torch.long))
    with pytest.raises(TypeError, match="integer"):
        group_advantages(torch.zeros(3), torch.zeros(3))


# ----------------------------------------------------------------------------- aggregation
# loss  [[1, 2, 3],      mask [[1, 1, 0],   (position [0, 2] is padding and holds nan)
#        [4, 5, 6]]            [1, 1, 1]]
# masked sum = 1 + 2 + 4 + 5 + 6 = 18, tokens = 5, sequences = 2, longest response = 3
LOSS = torch.tensor([[1.0, 2.0, float("nan")], [4.0, 5.0, 6.0]], dtype=D)
MASK = torch.tensor([[1, 1, 0], [1, 1, 1]])
NORMS = {NUM_TOKENS: 5.0, NUM_SEQS: 2.0, MAX_RESPONSE_LEN: 3.0}


@pytest.mark.parametrize("mode, expected", [
    ("token-mean", 18 / 5),                    # 3.6
    ("seq-mean-token-mean", (3 / 2 + 15 / 3) / 2),  # (1.5 + 5) / 2 = 3.25
    ("seq-mean-token-sum", 18 / 2),             # 9.0: verl 0.3.1's mean over sequences of token sums
    ("seq-mean-token-sum-norm", 18 / 3),        # 6.0: verl 0.3.1 divides by the max response length only
])
def test_aggregation_modes_by_hand(mode, expected):
    assert aggregate(LOSS, MASK, mode, NORMS).item() == pytest.approx(expected)
    # micro-batches of one row each, same global normalisers, sum to the full-batch value
    parts = [aggregate(LOSS[i:i + 1], MASK[i:i + 1], mode, NORMS) for i in range(2)]
    assert sum(p.item() for p in parts) == pytest.approx(expected)


def test_local_normalisers_count_tokens_sequences_and_longest():
    mask = torch.tensor([[1, 1, 0], [1, 1, 1], [0, 0, 0]])
    assert local_normalisers(mask) == {NUM_TOKENS: 5.0, NUM_SEQS: 2.0, MAX_RESPONSE_LEN: 3.0}


def test_aggregation_rejects_unknown_mode_and_missing_norms():
    with pytest.raises(ValueError, match="unknown loss aggregation 'sum'"):
        aggregate(LOSS, MASK, "sum", NORMS)
    with pytest.raises(KeyError, match="num_seqs"):
        aggregate(LOSS, MASK, "token-mean", {NUM_TOKENS: 5.0})


# ----------------------------------------------------------------------------- PPO clip
# old logprobs 0, so ratio r = exp(logp). clip_low 0.2 -> lower bound 0.8, clip_high 0.28 -> 1.28
#   token  A    r    -A*r   -A*clip(r)   max     dual (c=3, A<0: min(., 3))
#   a     +1   1.5   -1.5   -1.28        -1.28   -1.28   clipped high, no gradient
#   b     +1   0.5   -0.5   -0.8         -0.5    -0.5    lower bound is inactive for A > 0
#   c     -1   0.5    0.5    0.8          0.8     0.8    clipped low, no gradient
#   d     -1   1.2    1.2    1.2          1.2     1.2    inside the box
#   e     -1   5.0    5.0    1.28         5.0     3.0    dual-clipped, no gradient
#   f     +2   1.1   -2.2   -2.2         -2.2    -2.2
RATIOS = torch.tensor([[1.5, 0.5, 0.5], [1.2, 5.0, 1.1]], dtype=D)
ADVS = torch.tensor([[1.0, 1.0, -1.0], [-1.0, -1.0, 2.0]], dtype=D)


def _clip(dual: float, clip_high: float = 0.28):
    logp = RATIOS.log().requires_grad_(True)
    loss, metrics = ppo_clip_loss(logp, torch.zeros_like(logp), ADVS, torch.ones_like(logp),
                                  clip_low=0.2, clip_high=clip_high, dual_clip=dual)
    loss.sum().backward()
    return loss.detach(), logp.grad, metrics


def test_ppo_clip_asymmetric_bounds_by_hand():
    loss, grad, metrics = _clip(dual=0.0)
    torch.testing.assert_close(loss, torch.tensor([[-1.28, -0.5, 0.8], [1.2, 5.0, -2.2]], dtype=D))
    # d(-A r)/d logp = -A r where unclipped; 0 where clipped
    torch.testing.assert_close(grad, torch.tensor([[0.0, -0.5, 0.0], [1.2, 5.0, -2.2]], dtype=D))
    assert metrics["clip_frac_high"] == pytest.approx(1 / 6)
    assert metrics["clip_frac_low"] == pytest.approx(1 / 6)
    assert metrics["dual_clip_frac"] == 0.0
    assert metrics["ratio_max"] == pytest.approx(5.0) and metrics["ratio_min"] == pytest.approx(0.5)
    assert metrics["ratio_mean"] == pytest.approx((1.5 + 0.5 + 0.5 + 1.2 + 5.0 + 1.1) / 6)


def test_ppo_dual_clip_caps_negative_advantage_loss():
    loss, grad, metrics = _clip(dual=3.0)
    torch.testing.assert_close(loss, torch.tensor([[-1.28, -0.5, 0.8], [1.2, 3.0, -2.2]], dtype=D))
    assert grad[1, 1].item() == 0.0
    assert metrics["dual_clip_frac"] == pytest.approx(1 / 6)


def test_ppo_symmetric_clip_uses_clip_high_for_upper_bound():
    loss, _, _ = _clip(dual=0.0, clip_high=0.2)
    assert loss[0, 0].item() == pytest.approx(-1.2)


def test_ppo_sequence_advantages_broadcast_and_padding_nan_is_harmless():
    logp = torch.tensor([[0.1, -0.2, 0.0]], dtype=D, requires_grad=True)
    old = torch.tensor([[0.0, 0.0, float("nan")]], dtype=D)
    mask = torch.tensor([[1, 1, 0]])
    loss, _ = ppo_clip_loss(logp, old, torch.tensor([2.0], dtype=D), mask, 0.2, 0.2, 3.0)
    # r = e^0.1 = 1.10517, e^-0.2 = 0.81873, both inside [0.8, 1.2]: -2 r
    assert loss[0, 0].item() == pytest.approx(-2 * math.exp(0.1))
    assert loss[0, 1].item() == pytest.approx(-2 * math.exp(-0.2))
    aggregate(loss, mask, "token-mean", {NUM_TOKENS: 2, NUM_SEQS: 1, MAX_RESPONSE_LEN: 3}).backward()
    assert torch.isfinite(logp.grad).all() and logp.grad[0, 2].item() == 0.0


# ----------------------------------------------------------------------------- KL
# p = 0.5, p_ref = 0.25:  k1 = log 2 = 0.6931472; k2 = 0.5 (log 2)^2 = 0.2402265;
#                         k3 = e^{-log 2} + log 2 - 1 = 0.5 + 0.6931472 - 1 = 0.1931472
# p = 0.25, p_ref = 0.5:  k1 = -0.6931472; k2 = 0.2402265; k3 = 2 - 0.6931472 - 1 = 0.3068528
LOGP = torch.tensor([math.log(0.5), math.log(0.25)], dtype=D)
REF = torch.tensor([math.log(0.25), math.log(0.5)], dtype=D)
LN2 = math.log(2)


@pytest.mark.parametrize("estimator, expected", [
    ("k1", [LN2, -LN2]),
    ("k2", [0.5 * LN2 ** 2, 0.5 * LN2 ** 2]),
    ("k3", [0.5 + LN2 - 1, 2 - LN2 - 1]),
])
def test_kl_estimators_by_hand(estimator, expected):
    torch.testing.assert_close(kl_penalty(LOGP, REF, estimator), torch.tensor(expected, dtype=D))


def test_k3_is_clamped_and_keeps_finite_gradients():
    logp = torch.tensor([-30.0, -100.0], dtype=D, requires_grad=True)
    kl = kl_penalty(logp, torch.zeros(2, dtype=D), "k3", clamp=5.0)  # e^30 - 31 >> 5
    assert kl.tolist() == [5.0, 5.0]
    kl.sum().backward()
    assert torch.isfinite(logp.grad).all()
    with pytest.raises(ValueError, match="unknown KL estimator 'k4'"):
        kl_penalty(LOGP, REF, "k4")


# ----------------------------------------------------------------------------- the LossFn
def test_grpo_loss_combines_clip_kl_and_entropy_by_hand():
    # 2 x 2 tokens, on-policy (ratio 1), advantages +1 / -1 per sequence, p = 0.5 everywhere,
    # reference 0.25 on row 0 (k3 = 0.1931472 per token) and 0.5 on row 1 (k3 = 0).
    # pg sum = -1 -1 +1 +1 = 0; KL sum = 2 * 0.1931472; entropy sum = 1 + 1 + 2 + 2 = 6
    # loss = (0 + 0.1 * 0.3862944 - 0.01 * 6) / 4 = (0.03862944 - 0.06) / 4 = -0.00534264
    cfg = GRPOConfig(kl_coef=0.1, kl_estimator="k3", entropy_coef=0.01, loss_aggregation="token-mean")
    logp = torch.full((2, 2), math.log(0.5), dtype=D)
    batch = {
        "response_mask": torch.ones(2, 2), "advantages": torch.tensor([1.0, -1.0], dtype=D),
        "ref_logprobs": torch.tensor([[math.log(0.25)] * 2, [math.log(0.5)] * 2], dtype=D),
        "entropy": torch.tensor([[1.0, 1.0], [2.0, 2.0]], dtype=D),
    }
    loss_fn = make_grpo_loss(cfg)
    assert loss_fn.entropy == "loss"
    loss, metrics = loss_fn(logp, batch, {NUM_TOKENS: 4, NUM_SEQS: 2, MAX_RESPONSE_LEN: 2})
    assert loss.item() == pytest.approx((0.1 * 2 * (0.5 + LN2 - 1) - 0.01 * 6) / 4)
    assert metrics["kl"] == pytest.approx((0.5 + LN2 - 1) / 2)
    assert metrics["entropy"] == pytest.approx(1.5)
    assert metrics["ratio_mean"] == pytest.approx(1.0)


def test_grpo_loss_constant_length_for_sum_norm_and_missing_reference():
    cfg = GRPOConfig(kl_coef=0.0, loss_aggregation="seq-mean-token-sum-norm")
    batch = {"response_mask": MASK, "advantages": torch.tensor([1.0, 1.0], dtype=D)}
    logp = torch.zeros(2, 3, dtype=D)
    norms = {NUM_TOKENS: 5, NUM_SEQS: 2, MAX_RESPONSE_LEN: 3}
    # on-policy: per-token loss -A = -1 on 5 tokens; / L only (verl 0.3.1), L = the step's longest
    # response (3) or the configured constant (10)
    assert make_grpo_loss(cfg, log_entropy=False)(logp, batch, norms)[0].item() == pytest.approx(-5 / 3)
    assert make_grpo_loss(cfg, 10, log_entropy=False)(logp, batch, norms)[0].item() == pytest.approx(-5 / 10)
    with pytest.raises(KeyError, match="ref_logprobs"):
        make_grpo_loss(GRPOConfig(kl_coef=0.01), log_entropy=False)(logp, batch, norms)


def test_gpg_policy_loss_is_minus_advantage_times_logprob_by_hand():
    # row 0: A = 2, logp -0.5, -1.0 (and padding nan); row 1: A = -1, logp -2.0
    # per-token loss: 1.0, 2.0 | -2.0; token-mean over 3 tokens = 1/3
    cfg = GRPOConfig(kl_coef=0.0, policy_loss="gpg")
    logp = torch.tensor([[-0.5, -1.0, float("nan")], [-2.0, 0.0, 0.0]], dtype=D, requires_grad=True)
    batch = {"response_mask": torch.tensor([[1, 1, 0], [1, 0, 0]]), "advantages": torch.tensor([2.0, -1.0], dtype=D),
             "old_logprobs": torch.zeros(2, 3, dtype=D)}   # ignored: no ratio
    loss, _ = make_grpo_loss(cfg, log_entropy=False)(logp, batch, {NUM_TOKENS: 3, NUM_SEQS: 2, MAX_RESPONSE_LEN: 2})
    assert loss.item() == pytest.approx(1 / 3)
    loss.backward()   # d loss / d logp = -A / 3 on response tokens, 0 (not nan) on padding
    torch.testing.assert_close(logp.grad, torch.tensor([[-2 / 3, -2 / 3, 0.0], [1 / 3, 0.0, 0.0]], dtype=D))


def test_policy_loss_and_aggregation_choices_come_from_the_registries():
    assert {"ppo_clip", "gpg"} <= set(POLICY_LOSSES)
    with pytest.raises(ConfigError, match=r"grpo\.policy_loss='reinforce'.*gpg.*ppo_clip"):
        load_config("base", ["grpo.policy_loss=reinforce"])
    assert load_config("base", ["grpo.loss_aggregation=seq-mean-token-sum"]).grpo.loss_aggregation == "seq-mean-token-sum"
    assert set(AGGREGATIONS) == {"token-mean", "seq-mean-token-mean", "seq-mean-token-sum", "seq-mean-token-sum-norm"}


def test_defaults_follow_verl_0_3_1():
    cfg = load_config("base")
    assert cfg.policy.weight_decay == 0.01
    assert (cfg.grpo.advantage_estimator, cfg.grpo.policy_loss, cfg.grpo.loss_aggregation) == ("grpo", "ppo_clip",
                                                                                                 "token-mean")
    assert (cfg.grpo.clip_low, cfg.grpo.clip_high, cfg.grpo.dual_clip, cfg.grpo.kl_coef) == (0.2, 0.2, 3.0, 0.001)


# ----------------------------------------------------------------------------- config errors
@pytest.mark.parametrize("override, key", [
    ("grpo.clip_low=1.5", "grpo.clip_low"),
    ("grpo.dual_clip=0.5", "grpo.dual_clip"),
    ("grpo.kl_estimator=k4", "grpo.kl_estimator"),
    ("grpo.loss_aggregation=sum", "grpo.loss_aggregation"),
    ("grpo.kl_clamp=0", "grpo.kl_clamp"),
    ("grpo.normalize_std=maybe", "normalize_std"),
])
def test_bad_grpo_config_names_the_key(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config("base", [override])
