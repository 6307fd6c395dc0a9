"""Restricting sampling to a set of token ids (the evaluation's constrained re-decode).

TensorRT-LLM's PyTorch backend calls a per-request ``logits_processor`` as
``processor(req_id, logits, token_ids, stream_ptr, client_id)`` and expects ``logits`` to be
modified in place (``tensorrt_llm/sampling_params.py``, ``LogitsProcessor``; "any callable with the
same signature" is accepted). The object travels to the GPU workers, so it is a plain picklable
class rather than a closure.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch


class AllowedTokensProcessor:
    def __init__(self, allowed_token_ids: Sequence[int]) -> None:
        if not allowed_token_ids:
            raise ValueError("allowed_token_ids must name at least one token")
        self.allowed_token_ids = tuple(int(t) for t in allowed_token_ids)
        self._mask: torch.Tensor | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {"allowed_token_ids": self.allowed_token_ids, "_mask": None}

    def _blocked(self, logits: torch.Tensor) -> torch.Tensor:
        vocab = logits.shape[-1]
        mask = self._mask
        if mask is None or mask.shape[0] != vocab or mask.device != logits.device:
            if max(self.allowed_token_ids) >= vocab or min(self.allowed_token_ids) < 0:
                raise ValueError(f"allowed token ids {self.allowed_token_ids} fall outside the vocabulary (size {vocab})")
            mask = torch.ones(vocab, dtype=torch.bool, device=logits.device)
            mask[list(self.allowed_token_ids)] = False
            self._mask = mask
        return mask

    def __call__(self, req_id: int, logits: torch.Tensor, token_ids: list[list[int]],
                 stream_ptr: int | None, client_id: int | None) -> None:
        logits.masked_fill_(self._blocked(logits), float("-inf"))
