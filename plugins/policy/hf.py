"""The ``hf`` policy backend (transformers + PyTorch, optionally data-parallel under torchrun)."""

from __future__ import annotations

from typing import Any

from medssr_nemo.registry import register


@register("policy_backend", "hf")
def build_hf_backend(cfg: Any, *, model: Any = None, tokenizer: Any = None, reference: bool | None = None) -> Any:
    """An ``HFPolicyBackend`` for a ``MedSSRConfig``: ``model.path`` (or a built ``model`` +
    ``tokenizer``), ``model.dtype`` for the weights, ``policy.*`` for the optimiser and schedule,
    and ``train.steps * grpo.ppo_epochs`` optimiser steps as the schedule's length (the trainer
    takes ``ppo_epochs`` optimiser steps per rollout batch). ``reference``: build the frozen
    reference policy; None means "only if grpo.kl_coef > 0"."""
    import torch

    from medssr_nemo.policy.hf import HFPolicyBackend

    if reference is None:
        reference = cfg.grpo.kl_coef > 0
    return HFPolicyBackend(cfg.policy, cfg.model.path, model=model, tokenizer=tokenizer, reference=reference,
                           total_steps=cfg.train.steps * cfg.grpo.ppo_epochs, dtype=getattr(torch, cfg.model.dtype))
