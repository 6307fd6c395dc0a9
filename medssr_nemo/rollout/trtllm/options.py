"""``rollout.options`` for ``rollout.engine=tensorrt_llm``: parsed and checked in one place."""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from medssr_nemo.config.schema.common import check_choice, check_range

# Memory tags released by sleep() / restored by wake(): TensorRT-LLM 1.2's ExecutorMemoryType
# values, as verl's TensorRT-LLM rollout passes them (weights first, then the KV cache).
WEIGHT_TAGS = ("sampler", "drafter", "guided_decoder", "spec_resource_manager", "model_extra",
               "executor_extra", "model", "draft_model")
KV_CACHE_TAG = "kv_cache"


@dataclasses.dataclass
class TrtllmOptions:
    model_path: str | None = None            # HF checkpoint the engine starts from (default: the policy's)
    placement: str = "colocated"             # colocated (same GPUs as training) | separate
    tensor_parallel_size: int = 1
    pipeline_parallel_size: int = 1
    dtype: str = "bfloat16"
    bucket_mb: int = 512                     # refit bucket bound
    free_gpu_memory_fraction: float = 0.5    # KV cache share of the memory left after weights
    enable_prefix_caching: bool = True       # KV block reuse (reset after every refit)
    max_seq_len: int | None = None
    max_batch_size: int | None = None        # default: rollout.batch_size
    load_format: str = "auto"                # auto | dummy (random init: the first refit sets every weight)
    # HF names; checked on the tensors the engine holds (fused, sharded: rollout/trtllm/fused_names.py)
    verify_tensors: tuple[str, ...] = ("model.norm.weight", "model.layers.0.self_attn.q_proj.weight")
    refit_backend: str = "nccl"              # separate placement: nccl | gloo
    # default: MASTER_ADDR for the group led by rank 0, else the leader's address on the route to it
    refit_master_addr: str | None = None
    refit_master_port: int = 29611           # engine group i listens on port + i
    engine_replicas: int = 1                 # separate placement: engines on their own GPUs (colocated: world / (TP x PP))
    device_index: int | None = None          # this rank's GPU (default: torch.cuda.current_device())
    sleep_tags: tuple[str, ...] = WEIGHT_TAGS + (KV_CACHE_TAG,)
    llm_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)  # passed to LLM(...) as is

    def __post_init__(self) -> None:
        check_choice("rollout.options.placement", self.placement, ["colocated", "separate"])
        check_range("rollout.options.tensor_parallel_size", self.tensor_parallel_size, 1)
        check_range("rollout.options.pipeline_parallel_size", self.pipeline_parallel_size, 1)
        check_choice("rollout.options.dtype", self.dtype, ["bfloat16", "float16", "float32", "auto"])
        check_range("rollout.options.bucket_mb", self.bucket_mb, 1)
        check_range("rollout.options.free_gpu_memory_fraction", self.free_gpu_memory_fraction, 0.0, 1.0, low_open=True)
        check_choice("rollout.options.load_format", self.load_format, ["auto", "dummy"])
        check_choice("rollout.options.refit_backend", self.refit_backend, ["nccl", "gloo"])
        check_range("rollout.options.engine_replicas", self.engine_replicas, 1)
        self.verify_tensors = tuple(self.verify_tensors)
        self.sleep_tags = tuple(self.sleep_tags)

    @property
    def colocated(self) -> bool:
        return self.placement == "colocated"

    @property
    def engine_gpus(self) -> int:
        return self.tensor_parallel_size * self.pipeline_parallel_size

    @classmethod
    def from_mapping(cls, options: Mapping[str, Any]) -> "TrtllmOptions":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ValueError(f"rollout.options has unknown keys {unknown} for engine tensorrt_llm; "
                             f"allowed: {sorted(known)}")
        return cls(**dict(options))
