"""Tiny randomly initialised models of real architectures (Llama, Qwen2, Qwen3) for fast tests.

They use SmolLM2's real tokenizer (49,152 tokens, with its chat template), so prompts, answer
extraction and chat formatting behave exactly as with a real policy; only the weights are random.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from medssr_nemo.models.loading import EMBEDDED_SMOLLM2, load_tokenizer

_TINY_SHAPES: dict[str, dict[str, Any]] = {
    "llama": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2),
    "qwen2": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2,   # q/k/v carry biases
                  num_attention_heads=4, num_key_value_heads=2),
    "qwen3": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, head_dim=16),
}


def make_tiny_model(arch: str = "llama", seed: int = 0, **overrides: Any) -> tuple[Any, Any]:
    """(model, tokenizer): a ``arch``-architecture model with a few hundred thousand weights
    per layer plus the 49k-token embedding, initialised from ``seed``."""
    from transformers import (LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM, Qwen3Config,
                              Qwen3ForCausalLM)

    if arch not in _TINY_SHAPES:
        raise ValueError(f"unknown tiny architecture {arch!r}; known: {sorted(_TINY_SHAPES)}")
    tokenizer = load_tokenizer(EMBEDDED_SMOLLM2)
    shape = {**_TINY_SHAPES[arch], **overrides}
    common = dict(
        vocab_size=len(tokenizer),
        max_position_embeddings=2048,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    config_cls, model_cls = {"llama": (LlamaConfig, LlamaForCausalLM), "qwen2": (Qwen2Config, Qwen2ForCausalLM),
                             "qwen3": (Qwen3Config, Qwen3ForCausalLM)}[arch]
    config = config_cls(**common, **shape)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = model_cls(config)
    model.eval()
    return model, tokenizer


def save_tiny_model(directory: str | os.PathLike, arch: str = "llama", seed: int = 0, **overrides: Any) -> Path:
    """Write a tiny model as a Hugging Face directory that ``load_causal_lm`` accepts."""
    model, tokenizer = make_tiny_model(arch, seed, **overrides)
    directory = Path(directory)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory
