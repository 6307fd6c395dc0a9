"""The ``tensorrt_llm`` rollout engine plugin (kind ``rollout_engine``).

Select it with ``rollout.engine=tensorrt_llm`` and engine keys under ``rollout.options``
(``medssr_nemo/rollout/trtllm/options.py``). TensorRT-LLM is imported only when an engine is
built; without it the error names the NGC container to use. What has and has not been run is
written in ``medssr_nemo/rollout/trtllm/api.py`` and ``docs/cluster.md``.
"""

from __future__ import annotations

from typing import Any

from medssr_nemo.registry import register
from medssr_nemo.rollout.interfaces import engine_factory


@register("rollout_engine", "tensorrt_llm")
@engine_factory(needs_policy_module=False)   # loads its own weights; refit from export_hf_weights
def build_tensorrt_llm_engine(rollout_cfg: Any, model: Any = None, tokenizer: Any = None,
                              model_path: str | None = None, **_: Any) -> Any:
    """Build the engine from the ``rollout`` config section. The checkpoint the engine starts
    from is ``rollout.options.model_path``, else ``model_path``, else the policy module's
    ``config._name_or_path``."""
    from medssr_nemo.rollout.trtllm.engine import TensorRTLLMEngine
    from medssr_nemo.rollout.trtllm.options import TrtllmOptions

    options = TrtllmOptions.from_mapping(dict(rollout_cfg.options or {}))
    path = options.model_path or model_path or getattr(getattr(model, "config", None), "_name_or_path", None)
    if not path:
        raise ValueError("rollout.engine=tensorrt_llm needs a Hugging Face checkpoint to start from: set "
                         "rollout.options.model_path (a local directory or hub id)")
    if tokenizer is None:
        raise ValueError("rollout.engine=tensorrt_llm needs the policy's tokenizer")
    return TensorRTLLMEngine(str(path), tokenizer, options, max_batch_size=rollout_cfg.batch_size)
