"""FAKE tensorrt_llm (see tests/fakes/README.md): the 1.2 LLM API surface, backed by a tiny CPU model."""

__version__ = "1.2.0"

from tensorrt_llm import llmapi  # noqa: E402
from tensorrt_llm.llmapi import LLM, KvCacheConfig  # noqa: E402
from tensorrt_llm.sampling_params import SamplingParams  # noqa: E402

__all__ = ["LLM", "KvCacheConfig", "SamplingParams", "llmapi"]
