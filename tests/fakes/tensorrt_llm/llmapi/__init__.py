"""FAKE tensorrt_llm.llmapi."""

from tensorrt_llm.llmapi import llm_args  # noqa: F401
from tensorrt_llm.llmapi.llm import LLM
from tensorrt_llm.llmapi.llm_args import KvCacheConfig, SleepConfig, TorchLlmArgs
from tensorrt_llm.sampling_params import SamplingParams

__all__ = ["LLM", "KvCacheConfig", "SamplingParams", "SleepConfig", "TorchLlmArgs"]
