"""GRPO policy loss: pure functions of per-token tensors, plus the ``LossFunction`` a backend calls
(its contract: ``policy/loss_contract.py``).

Every function takes ``[B, T]`` tensors aligned with the token batch (``policy/interfaces.py``):
position ``t`` holds the quantity of token ``t``; ``mask`` is 1 on response tokens.

Normalisation is global: ``aggregate`` divides by counts of the *whole step* (all micro-batches,
all data-parallel ranks), given from outside, so the sum of micro-batch losses equals the loss of
the full batch and neither micro-batch size nor parallel layout changes the objective. (verl 0.3.1
divides each micro-batch by its own counts and averages micro-batches, which makes the objective
depend on how the step is cut; docs/design.md, "Loss normalisation".)

Two registries, selected by config in the manner of verl's ``core_algos``: ``POLICY_LOSSES``
(``grpo.policy_loss``) and ``AGGREGATIONS`` (``grpo.loss_aggregation``); ``KL_ESTIMATORS``
(``grpo.kl_estimator``) likewise. The config schema takes its choice lists from them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Mapping

import torch

from medssr_nemo.grpo.rollout_correction import known_rollout_mask, truncated_is_weights
from medssr_nemo.policy.loss_contract import MAX_RESPONSE_LEN, NORMALISER_KEYS, NUM_SEQS, NUM_TOKENS, EntropyUse
from medssr_nemo.registry import table_entry, table_registrar

if TYPE_CHECKING:
    from medssr_nemo.config.schema.grpo import GRPOConfig

_LOG_RATIO_LIMIT = 20.0  # exp(20) ~ 5e8: keeps exp finite; far beyond any clip or KL clamp


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` over positions where ``mask`` is set (0 if none)."""
    mask = mask.to(torch.bool)
    total = torch.where(mask, values, torch.zeros_like(values)).sum()
    return total / mask.sum().clamp(min=1)


# ----------------------------------------------------------------------------- KL to reference

def _k1(logprobs: torch.Tensor, ref_logprobs: torch.Tensor) -> torch.Tensor:
    """k1 = log p - log p_ref (unbiased, can be negative)."""
    return logprobs - ref_logprobs


def _k2(logprobs: torch.Tensor, ref_logprobs: torch.Tensor) -> torch.Tensor:
    """k2 = 0.5 * (log p - log p_ref)^2."""
    return 0.5 * (logprobs - ref_logprobs) ** 2


def _k3(logprobs: torch.Tensor, ref_logprobs: torch.Tensor) -> torch.Tensor:
    """k3 = exp(log p_ref - log p) - (log p_ref - log p) - 1 (unbiased, >= 0; Schulman 2020)."""
    d = (ref_logprobs - logprobs).clamp(-_LOG_RATIO_LIMIT, _LOG_RATIO_LIMIT)
    return torch.exp(d) - d - 1


KL_ESTIMATORS: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "k1": _k1, "k2": _k2, "k3": _k3,
}


def kl_penalty(logprobs: torch.Tensor, ref_logprobs: torch.Tensor, estimator: str = "k3",
               clamp: float = 10.0) -> torch.Tensor:
    """Per-token estimate of KL(p || p_ref) from sampled-token logprobs (see the ``_k*``
    docstrings). k3 is clamped to [-clamp, clamp]: one token whose reference probability is far
    higher than the policy's would otherwise dominate the step."""
    if estimator not in KL_ESTIMATORS:
        raise ValueError(f"unknown KL estimator {estimator!r}; known: {sorted(KL_ESTIMATORS)}")
    kl = KL_ESTIMATORS[estimator](logprobs, ref_logprobs)
    return kl.clamp(-clamp, clamp) if estimator == "k3" else kl


# ----------------------------------------------------------------------------- aggregation

def _token_mean(masked: torch.Tensor, mask: torch.Tensor, norms: Mapping[str, float]) -> torch.Tensor:
    """sum_{i,t} l_it m_it / N_tokens."""
    return masked.sum() / max(norms[NUM_TOKENS], 1.0)


def _seq_mean_token_mean(masked: torch.Tensor, mask: torch.Tensor, norms: Mapping[str, float]) -> torch.Tensor:
    """(1 / N_seqs) * sum_i [ sum_t l_it m_it / sum_t m_it ]  (rows without tokens add 0)."""
    per_seq = masked.sum(-1) / mask.sum(-1).clamp(min=1)
    return per_seq.sum() / max(norms[NUM_SEQS], 1.0)


def _seq_mean_token_sum(masked: torch.Tensor, mask: torch.Tensor, norms: Mapping[str, float]) -> torch.Tensor:
    """(1 / N_seqs) * sum_i sum_t l_it m_it: each sequence's token sum, averaged over sequences
    (verl 0.3.1's formula; long responses weigh more)."""
    return masked.sum() / max(norms[NUM_SEQS], 1.0)


def _seq_mean_token_sum_norm(masked: torch.Tensor, mask: torch.Tensor, norms: Mapping[str, float]) -> torch.Tensor:
    """sum_{i,t} l_it m_it / L, L a constant length (Dr. GRPO): no length bias. As in verl 0.3.1,
    the divisor is the maximum response length only, not times the number of sequences, so the
    loss scale grows with the batch."""
    return masked.sum() / max(norms[MAX_RESPONSE_LEN], 1.0)


AGGREGATIONS: dict[str, Callable[[torch.Tensor, torch.Tensor, Mapping[str, float]], torch.Tensor]] = {
    "token-mean": _token_mean,
    "seq-mean-token-mean": _seq_mean_token_mean,
    "seq-mean-token-sum": _seq_mean_token_sum,
    "seq-mean-token-sum-norm": _seq_mean_token_sum_norm,
}


def aggregate(loss_mat: torch.Tensor, mask: torch.Tensor, mode: str,
              global_norms: Mapping[str, float]) -> torch.Tensor:
    """Reduce a per-token loss [B, T] to a scalar with the *global* denominators of ``mode``
    (see the formulas in ``AGGREGATIONS``' functions). Masked positions never contribute, even if
    they hold inf or nan."""
    if mode not in AGGREGATIONS:
        raise ValueError(f"unknown loss aggregation {mode!r}; known: {sorted(AGGREGATIONS)}")
    missing = {NUM_TOKENS, NUM_SEQS, MAX_RESPONSE_LEN} - set(global_norms)
    if missing:
        raise KeyError(f"global normalisers lack {sorted(missing)}; got {sorted(global_norms)}")
    bool_mask = mask.to(torch.bool)
    masked = torch.where(bool_mask, loss_mat, torch.zeros_like(loss_mat))
    return AGGREGATIONS[mode](masked, bool_mask.to(loss_mat.dtype), global_norms)


# ----------------------------------------------------------------------------- PPO clip

def ppo_clip_loss(logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor,
                  mask: torch.Tensor, clip_low: float = 0.2, clip_high: float = 0.2,
                  dual_clip: float = 0.0) -> tuple[torch.Tensor, dict[str, float]]:
    """Per-token clipped surrogate loss [B, T] and clip metrics (means over masked tokens)::

        rho  = exp(logp - logp_old)
        L    = max(-A * rho, -A * clip(rho, 1 - clip_low, 1 + clip_high))
        L    = min(L, -A * dual_clip)          where A < 0, if dual_clip > 0 (Ye et al. 2020)

    ``advantages`` is [B] (one per sequence, broadcast over tokens) or [B, T]. Metrics:
    ``clip_frac_high`` (A > 0 and rho > 1 + clip_high: the gradient is cut), ``clip_frac_low``
    (A < 0 and rho < 1 - clip_low), ``dual_clip_frac`` (A < 0 and rho > dual_clip), ``ratio_mean``,
    ``ratio_max``, ``ratio_min``, ``ppo_kl`` (mean of 0.5 (logp - logp_old)^2).
    """
    if advantages.dim() == 1:
        advantages = advantages[:, None]
    advantages = advantages.to(logprobs.dtype)
    valid = mask.to(torch.bool)
    # Padding may hold anything (even nan): the ratio there is forced to 1 so no nan reaches grads.
    log_ratio = torch.where(valid, logprobs - old_logprobs, torch.zeros_like(logprobs))
    ratio = torch.exp(log_ratio.clamp(-_LOG_RATIO_LIMIT, _LOG_RATIO_LIMIT))
    unclipped = -advantages * ratio
    clipped = -advantages * ratio.clamp(1.0 - clip_low, 1.0 + clip_high)
    loss = torch.maximum(unclipped, clipped)
    negative = advantages < 0
    if dual_clip:
        loss = torch.where(negative, torch.minimum(loss, -advantages * dual_clip), loss)

    with torch.no_grad():
        r = ratio.detach()
        positive = advantages > 0
        metrics = {
            "clip_frac_high": float(masked_mean((positive & (r > 1.0 + clip_high)).float(), valid)),
            "clip_frac_low": float(masked_mean((negative & (r < 1.0 - clip_low)).float(), valid)),
            "dual_clip_frac": float(masked_mean((negative & (r > dual_clip)).float(), valid)) if dual_clip else 0.0,
            "ratio_mean": float(masked_mean(r, valid)),
            "ratio_max": float(r[valid].max()) if valid.any() else 1.0,
            "ratio_min": float(r[valid].min()) if valid.any() else 1.0,
            "ppo_kl": float(masked_mean(0.5 * log_ratio.detach() ** 2, valid)),
        }
    return loss, metrics


def policy_gradient_loss(logprobs: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor
                         ) -> tuple[torch.Tensor, dict[str, float]]:
    """Per-token plain policy-gradient loss [B, T], no ratio and no clip: ``L = -A * logp``
    (verl's ``gpg``; Chu et al. 2025). Its gradient is the REINFORCE estimator."""
    if advantages.dim() == 1:
        advantages = advantages[:, None]
    valid = mask.to(torch.bool)
    safe = torch.where(valid, logprobs, torch.zeros_like(logprobs))
    return -advantages.to(logprobs.dtype) * safe, {}


# policy_loss(logprobs, old_logprobs, advantages, mask, grpo config) -> (per-token loss [B, T], metrics)
PolicyLoss = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, "GRPOConfig"],
                      tuple[torch.Tensor, dict[str, float]]]
POLICY_LOSSES: dict[str, PolicyLoss] = {}


register_policy_loss = table_registrar(POLICY_LOSSES, "policy loss")


@register_policy_loss("ppo_clip")
def _ppo_clip(logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor,
              cfg: "GRPOConfig") -> tuple[torch.Tensor, dict[str, float]]:
    """``ppo_clip_loss`` with the config's clip range and dual clip (verl's ``vanilla``)."""
    return ppo_clip_loss(logprobs, old_logprobs, advantages, mask, cfg.clip_low, cfg.clip_high, cfg.dual_clip)


@register_policy_loss("gpg")
def _gpg(logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor,
         cfg: "GRPOConfig") -> tuple[torch.Tensor, dict[str, float]]:
    """``policy_gradient_loss``: ignores the old logprobs and the clip settings."""
    return policy_gradient_loss(logprobs, advantages, mask)


def get_policy_loss(name: str) -> PolicyLoss:
    return table_entry(POLICY_LOSSES, name, "policy loss")


# ----------------------------------------------------------------------------- the LossFunction

class GRPOLoss:
    """The GRPO ``LossFunction`` (``policy/loss_contract.py``)::

        loss = aggregate(L_pg + kl_coef * KL(p || p_ref) - entropy_coef * H, mask)

    with ``L_pg`` the per-token policy loss ``grpo.policy_loss`` names (PPO clip by default).

    It reads ``advantages``, ``old_logprobs`` (absent: on-policy, ratio 1) and ``ref_logprobs``
    (and, when present, reports the gap to ``rollout_logprobs``, the engine's sampling logprobs)
    (needed when kl_coef > 0) from the micro-batch, and ``entropy`` [b, T] when the backend was
    asked for it through ``self.entropy``: "loss" (with gradient, entropy_coef > 0) or "metric"
    (no gradient, for logging only). ``temperature`` tells the backend to compute the training
    logprobs from logits / temperature, as the old and reference logprobs were. Metrics are means
    over the micro-batch's response tokens; the backend weights them by token count
    (``*_max``/``*_min`` keys by max/min).
    """

    def __init__(self, cfg: GRPOConfig, max_response_len: int | None = None, log_entropy: bool = True,
                 temperature: float = 1.0):
        if temperature <= 0:
            raise ValueError(f"the GRPO loss needs a logprob temperature > 0, got {temperature}")
        self.cfg = cfg
        self.policy_loss = get_policy_loss(cfg.policy_loss)
        if cfg.loss_aggregation not in AGGREGATIONS:
            raise ValueError(f"unknown loss aggregation {cfg.loss_aggregation!r}; known: {sorted(AGGREGATIONS)}")
        self.max_response_len = max_response_len
        self.temperature = temperature
        self.entropy: EntropyUse = "loss" if cfg.entropy_coef > 0 else ("metric" if log_entropy else "off")
        self.normalisers: tuple[str, ...] = NORMALISER_KEYS

    def __call__(self, logprobs: torch.Tensor, batch: Mapping[str, torch.Tensor],
                 global_norms: Mapping[str, float]) -> tuple[torch.Tensor, dict[str, float]]:
        cfg = self.cfg
        for key in ("response_mask", "advantages"):
            if key not in batch:
                raise KeyError(f"GRPO loss needs batch[{key!r}]; batch has {sorted(batch)}")
        mask = batch["response_mask"]
        old = batch.get("old_logprobs")
        old = logprobs.detach() if old is None else old.to(logprobs.dtype)
        loss_mat, metrics = self.policy_loss(logprobs, old, batch["advantages"], mask, cfg)
        rollout = batch.get("rollout_logprobs")
        if cfg.rollout_is_cap > 0:   # engine/trainer mismatch: grpo/rollout_correction.py
            if rollout is None:
                raise KeyError("grpo.rollout_is_cap > 0 needs batch['rollout_logprobs'] (the engine's)")
            weights = truncated_is_weights(old, rollout, mask, cfg.rollout_is_cap)
            loss_mat = loss_mat * weights
            metrics["rollout_is_weight_mean"] = float(masked_mean(weights, mask))
        metrics["pg_loss"] = float(masked_mean(loss_mat.detach(), mask))
        if cfg.kl_coef > 0:
            if "ref_logprobs" not in batch:
                raise KeyError("grpo.kl_coef > 0 needs batch['ref_logprobs'] (reference policy logprobs); "
                               "set grpo.kl_coef=0 to train without a reference")
            kl = kl_penalty(logprobs, batch["ref_logprobs"].to(logprobs.dtype), cfg.kl_estimator, cfg.kl_clamp)
            kl = torch.where(mask.to(torch.bool), kl, torch.zeros_like(kl))
            loss_mat = loss_mat + cfg.kl_coef * kl
            metrics["kl"] = float(masked_mean(kl.detach(), mask))
        if self.entropy != "off":
            if "entropy" not in batch:
                raise KeyError("GRPO loss asked the backend for per-token entropy (loss_fn.entropy="
                               f"{self.entropy!r}) but the micro-batch has no 'entropy'")
            metrics["entropy"] = float(masked_mean(batch["entropy"].detach(), mask))
            if cfg.entropy_coef > 0:
                loss_mat = loss_mat - cfg.entropy_coef * batch["entropy"]
        if rollout is not None:  # the engine's sampling logprobs: how far they are from ours
            known = known_rollout_mask(rollout, mask)
            gap = torch.where(known.to(torch.bool), (logprobs.detach() - torch.nan_to_num(rollout)).abs(),
                              torch.zeros_like(logprobs))
            metrics["rollout_logprob_gap_mean"] = float(masked_mean(gap, known))
            metrics["rollout_logprob_gap_max"] = float(gap.max())
        norms = dict(global_norms)
        if self.max_response_len is not None:
            norms[MAX_RESPONSE_LEN] = float(self.max_response_len)
        return aggregate(loss_mat, mask, cfg.loss_aggregation, norms), metrics


def make_grpo_loss(cfg: GRPOConfig, max_response_len: int | None = None, log_entropy: bool = True,
                   temperature: float = 1.0) -> GRPOLoss:
    """The GRPO ``LossFunction`` for ``cfg``. ``max_response_len`` is the constant L of
    seq-mean-token-sum-norm (pass ``rollout.max_new_tokens``); without it the step's longest
    response is used. ``temperature``: the one the old/reference logprobs were computed at."""
    return GRPOLoss(cfg, max_response_len, log_entropy, temperature)
