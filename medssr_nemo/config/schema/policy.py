"""``policy``: the training backend, optimiser and schedule."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List

from medssr_nemo.config.schema.common import check_choice, check_range
import medssr_nemo.policy.schedules as schedules   # the schema's choices are the schedules that exist


@dataclass
class PolicyConfig:
    backend: str = "hf"                 # a registered policy_backend or a dotted path
    lr: float = 1e-6
    weight_decay: float = 0.01          # AdamW decoupled weight decay (verl 0.3.1 default)
    betas: List[float] = field(default_factory=lambda: [0.9, 0.999])
    adam_eps: float = 1e-8
    grad_clip: float = 1.0              # max global grad norm; 0 = off
    schedule: str = "constant"          # constant | cosine (policy/schedules.py SCHEDULES; linear warm-up)
    warmup_steps: int = 0
    min_lr_ratio: float = 0.0           # cosine floor as a fraction of lr
    micro_batch_size: int = 8           # sequences per forward/backward
    bf16: bool = True                   # bf16 autocast when on GPU (ignored on CPU)
    gradient_checkpointing: bool = False
    device: str = "auto"                # auto | cpu | cuda
    options: Dict[str, Any] = field(default_factory=dict)  # backend-specific keys

    def __post_init__(self) -> None:
        check_range("policy.lr", self.lr, 0.0)
        check_range("policy.weight_decay", self.weight_decay, 0.0)
        check_range("policy.adam_eps", self.adam_eps, 0.0, low_open=True)
        check_range("policy.grad_clip", self.grad_clip, 0.0)
        check_choice("policy.schedule", self.schedule, list(schedules.SCHEDULES))
        check_range("policy.warmup_steps", self.warmup_steps, 0)
        check_range("policy.min_lr_ratio", self.min_lr_ratio, 0.0, 1.0)
        check_range("policy.micro_batch_size", self.micro_batch_size, 1)
        check_choice("policy.device", self.device, ["auto", "cpu", "cuda"])
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ValueError(f"policy.betas={self.betas} must be two numbers in [0, 1)")
