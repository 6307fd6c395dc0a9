"""FAKE of tensorrt_llm/sampling_params.py (1.2): the fields the engine uses, with type checks."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, List, Optional


class LogitsProcessor(ABC):
    @abstractmethod
    def __call__(self, req_id: int, logits: Any, token_ids: List[List[int]],
                 stream_ptr: Optional[int], client_id: Optional[int]) -> None: ...


def _check(name: str, value: Any, kinds: tuple, allow_none: bool = True) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
        raise TypeError(f"SamplingParams.{name} must be {kinds}, got {type(value).__name__}")


@dataclass(slots=True, kw_only=True)
class SamplingParams:
    end_id: Optional[int] = None
    pad_id: Optional[int] = None
    max_tokens: int = 32
    bad_token_ids: Optional[List[int]] = None
    stop: Optional[Any] = None
    stop_token_ids: Optional[List[int]] = None
    include_stop_str_in_output: bool = False
    embedding_bias: Optional[Any] = None
    logits_processor: Optional[Any] = None
    n: int = 1
    top_k: Optional[int] = None
    top_p: Optional[float] = None
    seed: Optional[int] = None
    temperature: Optional[float] = None
    min_tokens: Optional[int] = None
    logprobs: Optional[int] = None
    prompt_logprobs: Optional[int] = None
    return_context_logits: bool = False
    return_generation_logits: bool = False
    exclude_input_from_output: bool = True
    ignore_eos: bool = False
    detokenize: bool = True
    add_special_tokens: bool = True
    skip_special_tokens: bool = True

    def __post_init__(self) -> None:
        for name in ("end_id", "pad_id", "top_k", "seed", "min_tokens", "logprobs"):
            _check(name, getattr(self, name), (int,))
        _check("max_tokens", self.max_tokens, (int,), allow_none=False)
        if self.max_tokens < 1:
            raise ValueError("max_tokens must be positive")
        for name in ("top_p", "temperature"):
            _check(name, getattr(self, name), (int, float))
        if self.stop_token_ids is not None:
            if not isinstance(self.stop_token_ids, list) or not all(isinstance(t, int) for t in self.stop_token_ids):
                raise TypeError("SamplingParams.stop_token_ids must be a list of ints")
        if self.logits_processor is not None and not callable(self.logits_processor):
            raise TypeError("SamplingParams.logits_processor must be callable")
        for name in ("include_stop_str_in_output", "detokenize"):
            _check(name, getattr(self, name), (bool,), allow_none=False)
