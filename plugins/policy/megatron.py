"""The ``megatron`` policy backend (megatron-core GPTModel: tensor x pipeline x data parallel)."""

from __future__ import annotations

from typing import Any

from medssr_nemo.registry import register


@register("policy_backend", "megatron")
def build_megatron_backend(cfg: Any, *, model: Any = None, tokenizer: Any = None, reference: bool | None = None) -> Any:
    """A ``MegatronPolicyBackend`` for a ``MedSSRConfig``: ``model.path`` (or a built transformers
    ``model`` + ``tokenizer`` to import), ``model.tensor_parallel_size`` and
    ``model.pipeline_parallel_size`` for the layout (data parallel takes the rest of the world),
    ``policy.*`` for the optimiser and schedule, ``train.steps`` as the schedule's length.
    ``reference``: build the frozen reference policy; None means "only if grpo.kl_coef > 0"."""
    from medssr_nemo.policy.megatron.backend import MegatronPolicyBackend

    if reference is None:
        reference = cfg.grpo.kl_coef > 0
    return MegatronPolicyBackend(
        cfg.policy, cfg.model.path, model=model, tokenizer=tokenizer, reference=reference,
        total_steps=cfg.train.steps, tensor_parallel_size=cfg.model.tensor_parallel_size,
        pipeline_parallel_size=cfg.model.pipeline_parallel_size, seed=cfg.seed,
    )
