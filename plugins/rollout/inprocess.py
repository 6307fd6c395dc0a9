"""The built-in ``inprocess`` rollout engine: sampling on the policy's own module.

Config (``rollout`` section): ``batch_size`` is the engine's largest batch; engine-specific keys
go under ``rollout.options``: ``device``, ``dtype`` (float32 | bfloat16 | float16), ``cache``
(dynamic | static) and ``compile`` (bool; needs cache=static; CUDA graphs on a GPU).
"""

from __future__ import annotations

from typing import Any, Mapping

from medssr_nemo.registry import register
from medssr_nemo.rollout.interfaces import engine_factory

OPTION_KEYS = ("device", "dtype", "cache", "compile")


@register("rollout_engine", "inprocess")
@engine_factory(needs_policy_module=True)
def build_inprocess_engine(config: Any, *, model: Any, tokenizer: Any, **_: Any) -> Any:
    """An ``InProcessEngine`` for ``model`` from a ``RolloutConfig``-like object."""
    from medssr_nemo.rollout.inprocess import InProcessEngine  # torch/transformers only when used

    if model is None or tokenizer is None:
        raise ValueError(
            "rollout.engine=inprocess samples from the policy's own module: the policy backend "
            "must be Colocatable (rollout_module) and have a tokenizer (or choose another rollout.engine)"
        )
    options: Mapping[str, Any] = dict(getattr(config, "options", None) or {})
    unknown = sorted(set(options) - set(OPTION_KEYS))
    if unknown:
        raise ValueError(f"rollout.options: unknown key(s) {unknown} for engine 'inprocess'; allowed: {list(OPTION_KEYS)}")
    return InProcessEngine(
        model,
        tokenizer,
        device=options.get("device"),
        dtype=options.get("dtype"),
        max_batch_size=int(getattr(config, "batch_size", 64)),
        cache=options.get("cache", "dynamic"),
        compile=bool(options.get("compile", False)),
    )
