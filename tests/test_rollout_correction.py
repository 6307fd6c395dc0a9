"""Truncated importance-sampling correction from the engine's logprobs (grpo.rollout_is_cap),
hand-worked, and tokens without an engine logprob (NaN) left out of the correction and metrics."""

from __future__ import annotations

import math

import pytest
import torch

from medssr_nemo.config.schema.grpo import GRPOConfig
from medssr_nemo.grpo.losses import make_grpo_loss
from medssr_nemo.grpo.rollout_correction import truncated_is_weights
from medssr_nemo.grpo.rollouts import logprob_mismatch
from medssr_nemo.policy.loss_contract import MAX_RESPONSE_LEN, NUM_SEQS, NUM_TOKENS


def test_weights_are_the_capped_trainer_to_engine_ratio():
    old = torch.tensor([[-1.0, -2.0, -0.5, -3.0]])
    rollout = torch.tensor([[-1.5, -1.0, math.nan, -9.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    weights = truncated_is_weights(old, rollout, mask, cap=2.0)
    # exp(0.5) = 1.6487 (under the cap), exp(-1) = 0.3679, NaN engine logprob -> 1, masked -> 1
    assert weights.tolist()[0] == pytest.approx([math.exp(0.5), math.exp(-1.0), 1.0, 1.0])
    assert truncated_is_weights(old, torch.tensor([[-4.0, -2.0, -0.5, -3.0]]), mask, cap=2.0)[0, 0] == pytest.approx(2.0)


def test_loss_option_reweights_the_policy_gradient_and_skips_unknown_tokens():
    logprobs = torch.tensor([[-1.0, -2.0, -0.5]], requires_grad=True)
    batch = {"response_mask": torch.ones(1, 3), "advantages": torch.tensor([1.0]),
             "rollout_logprobs": torch.tensor([[-1.5, -1.0, math.nan]])}
    plain = make_grpo_loss(GRPOConfig(kl_coef=0.0), log_entropy=False)
    corrected = make_grpo_loss(GRPOConfig(kl_coef=0.0, rollout_is_cap=2.0), log_entropy=False)
    norms = {NUM_TOKENS: 3.0, NUM_SEQS: 1.0, MAX_RESPONSE_LEN: 3.0}
    loss_plain, metrics_plain = plain(logprobs, batch, norms)
    loss_corrected, metrics = corrected(logprobs, batch, norms)
    # on-policy ratio 1, advantage 1: per-token loss -1; token-mean of -w
    assert float(loss_plain.detach()) == pytest.approx(-1.0)
    assert float(loss_corrected.detach()) == pytest.approx(-(math.exp(0.5) + math.exp(-1.0) + 1.0) / 3)
    assert metrics["rollout_is_weight_mean"] == pytest.approx((math.exp(0.5) + math.exp(-1.0) + 1.0) / 3)
    assert metrics_plain["rollout_logprob_gap_mean"] == pytest.approx(0.75)   # NaN token left out
    with pytest.raises(KeyError, match="rollout_logprobs"):
        corrected(logprobs, {k: v for k, v in batch.items() if k != "rollout_logprobs"}, norms)


def test_mismatch_metrics_leave_out_tokens_without_engine_logprobs():
    metrics = logprob_mismatch(torch.tensor([[-1.0, math.nan]]), torch.tensor([[-1.5, -2.0]]), torch.ones(1, 2))
    assert metrics["mismatch/logprob_abs_mean"] == pytest.approx(0.5) and not math.isnan(metrics["mismatch/kl_k3"])
