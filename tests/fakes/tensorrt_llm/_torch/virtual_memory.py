"""FAKE of tensorrt_llm/_torch/virtual_memory.py: the memory tags sleep/wakeup take."""

from __future__ import annotations

import enum
from typing import Iterable


class ExecutorMemoryType(str, enum.Enum):
    SAMPLER = "sampler"
    DRAFTER = "drafter"
    GUIDED_DECODER = "guided_decoder"
    SPEC_RESOURCE_MANAGER = "spec_resource_manager"
    MODEL_EXTRA = "model_extra"
    EXECUTOR_EXTRA = "executor_extra"
    KV_CACHE = "kv_cache"
    MODEL_ENGINE_MAIN = "model"
    MODEL_ENGINE_DRAFT = "draft_model"


def verify_sleep_wakeup_tags(tags: Iterable[str]) -> list[ExecutorMemoryType]:
    return [ExecutorMemoryType(t) for t in tags]  # ValueError on an unknown tag, as the real one
