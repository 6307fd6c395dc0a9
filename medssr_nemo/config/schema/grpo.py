"""``grpo``: the algorithm. Where a default comes from is said per key: "verl 0.3.1 default" (the
MedSSR authors' trainer), "paper" only for what the MedSSR paper states, else "our choice"
(docs/design.md). The choice lists come from the registries in ``grpo/advantages.py`` and
``grpo/losses.py``, so a registered estimator or loss is selectable without touching the schema."""

from __future__ import annotations

from dataclasses import dataclass

from medssr_nemo.config.schema.common import check_choice, check_range
from medssr_nemo.grpo.advantages import ADVANTAGE_ESTIMATORS
from medssr_nemo.grpo.losses import AGGREGATIONS, KL_ESTIMATORS, POLICY_LOSSES


@dataclass
class GRPOConfig:
    group_size: int = 8                 # rollouts per prompt (G)
    prompts_per_step: int = 32          # questions per optimiser step
    advantage_estimator: str = "grpo"   # grpo | rloo | dr_grpo (ADVANTAGE_ESTIMATORS)
    normalize_std: bool = True          # grpo: (r - mean) / (std + eps); False: r - mean
    std_unbiased: bool = True           # std with n-1 (torch default) or n
    advantage_eps: float = 1e-6
    clip_low: float = 0.2               # ratio lower bound 1 - clip_low
    clip_high: float = 0.2              # ratio upper bound 1 + clip_high
    dual_clip: float = 3.0              # c of dual-clip PPO for negative advantages; 0 = off
    kl_coef: float = 0.001              # KL-to-reference loss coefficient; 0 = no reference
    kl_estimator: str = "k3"
    kl_clamp: float = 10.0              # |k3| clamp
    policy_loss: str = "ppo_clip"       # ppo_clip | gpg (POLICY_LOSSES)
    loss_aggregation: str = "token-mean"  # over the whole step; see docs/design.md (AGGREGATIONS)
    ppo_epochs: int = 1                 # optimiser passes over each rollout batch
    entropy_coef: float = 0.0
    rollout_is_cap: float = 0.0         # truncated importance-sampling cap for engine-sampled tokens; 0 = off

    def __post_init__(self) -> None:
        check_range("grpo.group_size", self.group_size, 1)
        check_range("grpo.prompts_per_step", self.prompts_per_step, 1)
        check_range("grpo.advantage_eps", self.advantage_eps, 0.0)
        check_range("grpo.clip_low", self.clip_low, 0.0, 1.0)
        check_range("grpo.clip_high", self.clip_high, 0.0)
        if self.dual_clip and self.dual_clip <= 1.0:
            raise ValueError(f"grpo.dual_clip={self.dual_clip} must be > 1 (or 0 to turn it off)")
        check_range("grpo.kl_coef", self.kl_coef, 0.0)
        check_choice("grpo.advantage_estimator", self.advantage_estimator, sorted(ADVANTAGE_ESTIMATORS))
        check_choice("grpo.policy_loss", self.policy_loss, sorted(POLICY_LOSSES))
        check_choice("grpo.kl_estimator", self.kl_estimator, sorted(KL_ESTIMATORS))
        check_range("grpo.kl_clamp", self.kl_clamp, 0.0, low_open=True)
        check_choice("grpo.loss_aggregation", self.loss_aggregation, list(AGGREGATIONS))
        check_range("grpo.ppo_epochs", self.ppo_epochs, 1)
        check_range("grpo.entropy_coef", self.entropy_coef, 0.0)
        check_range("grpo.rollout_is_cap", self.rollout_is_cap, 0.0)
