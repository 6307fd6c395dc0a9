"""FAKE of tensorrt_llm/llmapi/llm_args.py: the LLM arguments the engine passes, typed."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Dict, Optional

from tensorrt_llm._torch.virtual_memory import ExecutorMemoryType  # noqa: F401 - re-exported


@dataclasses.dataclass(kw_only=True)
class KvCacheConfig:
    enable_block_reuse: bool = True
    max_tokens: Optional[int] = None
    free_gpu_memory_fraction: Optional[float] = None

    def __post_init__(self) -> None:
        frac = self.free_gpu_memory_fraction
        if frac is not None and not 0 < frac <= 1:
            raise ValueError("free_gpu_memory_fraction must be in (0, 1]")


RESTORE_MODE_NAMES = ("NONE", "MEMSET", "CPU", "PINNED")   # names of the real RestoreMode enum


@dataclasses.dataclass(kw_only=True)
class SleepConfig:
    """Keys: ExecutorMemoryType members or their values; values: RestoreMode names. Unlisted tags
    are restored from host memory (the real one picks PINNED or CPU); the KV cache is discarded."""

    DEFAULT_RESTORE_MODES: ClassVar[Dict[Any, str]] = {ExecutorMemoryType.KV_CACHE: "NONE"}
    restore_modes: Dict[Any, str] = dataclasses.field(default_factory=lambda: dict(SleepConfig.DEFAULT_RESTORE_MODES))

    def __post_init__(self) -> None:
        if not isinstance(self.restore_modes, dict):
            raise ValueError(f"restore_modes must be dict, got {type(self.restore_modes).__name__}")
        normalized = {}
        for key, mode in self.restore_modes.items():
            try:
                tag = ExecutorMemoryType(key)
            except ValueError as err:
                raise ValueError(f"invalid executor memory type: {key}") from err
            name = getattr(mode, "name", mode)
            if name not in RESTORE_MODE_NAMES:
                raise ValueError(f"invalid restore_mode: {mode}. Expected one of: {', '.join(RESTORE_MODE_NAMES)}")
            normalized[tag] = name
        self.restore_modes = normalized


@dataclasses.dataclass(kw_only=True)
class TorchLlmArgs:
    model: str
    tokenizer: Optional[Any] = None
    tokenizer_mode: str = "auto"
    skip_tokenizer_init: bool = False
    trust_remote_code: bool = False
    tensor_parallel_size: int = 1
    dtype: str = "auto"
    revision: Optional[str] = None
    tokenizer_revision: Optional[str] = None
    pipeline_parallel_size: int = 1
    kv_cache_config: KvCacheConfig = dataclasses.field(default_factory=KvCacheConfig)
    max_batch_size: Optional[int] = None
    max_seq_len: Optional[int] = None
    max_num_tokens: Optional[int] = None
    load_format: str = "auto"
    orchestrator_type: Optional[str] = None
    ray_worker_extension_cls: Optional[str] = None
    sleep_config: Optional[SleepConfig] = None
    cuda_graph_config: Optional[Any] = None
    enable_chunked_prefill: bool = False
    backend: Optional[str] = None

    _TYPES = {"tensor_parallel_size": int, "pipeline_parallel_size": int, "skip_tokenizer_init": bool,
              "kv_cache_config": KvCacheConfig, "sleep_config": (SleepConfig, type(None)),
              "max_batch_size": (int, type(None)), "max_seq_len": (int, type(None)), "dtype": str,
              "load_format": str, "orchestrator_type": (str, type(None)),
              "ray_worker_extension_cls": (str, type(None))}

    def __post_init__(self) -> None:
        for name, kinds in self._TYPES.items():
            if not isinstance(getattr(self, name), kinds):
                raise TypeError(f"TorchLlmArgs.{name}: expected {kinds}, got {getattr(self, name)!r}")
        if self.load_format not in ("auto", "dummy"):
            raise ValueError(f"load_format {self.load_format!r}")
        if self.ray_worker_extension_cls and self.orchestrator_type != "ray":
            raise ValueError("ray_worker_extension_cls requires orchestrator_type='ray'")
