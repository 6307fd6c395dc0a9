"""Hugging Face parameter names -> the parameters a TensorRT-LLM engine holds (per architecture).

TensorRT-LLM's PyTorch models (``_torch/models/modeling_llama.py``, ``modeling_qwen.py``,
``modeling_qwen3.py``) keep attention's q, k and v projections as ONE fused column-parallel linear
``self_attn.qkv_proj`` and the MLP's gate and up projections as ``mlp.gate_up_proj``. A refit still
sends Hugging Face names (the engine's loader fuses them), but a check of what the engine HOLDS must
read the fused tensors, shard by shard:

- fused column-parallel (``qkv_proj``, ``gate_up_proj``; weight and, for Qwen2, bias): each part is
  cut into ``tp`` row chunks and rank ``r`` holds ``cat(q_r, k_r, v_r)`` (``cat(gate_r, up_r)``);
- row-parallel (``o_proj``, ``down_proj``): rank ``r`` holds column chunk ``r``;
- norms (``input_layernorm``, ``post_attention_layernorm``, ``model.norm``, Qwen3's ``q_norm`` and
  ``k_norm``): replicated, same name.

Embeddings and the LM head are left out of the check when ``tp > 1`` (their vocabulary sharding
and padding depend on engine settings), as are GQA layouts whose KV heads do not divide ``tp``
(the engine replicates those heads). NEVER checked against a real engine: the layout is what the
test fake in ``tests/fakes/tensorrt_llm/_torch/models.py`` implements.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Mapping

import torch

SUPPORTED_ARCHITECTURES = ("llama", "qwen2", "qwen3")   # HF config.model_type

_FUSED_PARTS = {
    "self_attn.qkv_proj": ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"),
    "mlp.gate_up_proj": ("mlp.gate_proj", "mlp.up_proj"),
}
_PART_OF = {part: fused for fused, parts in _FUSED_PARTS.items() for part in parts}
_LAYER = re.compile(r"(model\.layers\.\d+)\.(.+)\.(weight|bias)")
_ROW_PARALLEL = ("self_attn.o_proj", "mlp.down_proj")
_REPLICATED = ("input_layernorm", "post_attention_layernorm", "self_attn.q_norm", "self_attn.k_norm")


@dataclasses.dataclass(frozen=True)
class EngineTensor:
    """Where a Hugging Face tensor lives in the engine and what else is fused with it."""

    name: str                     # the engine's parameter name
    sources: tuple[str, ...]      # HF names stacked into it, in order (one for unfused)
    layout: str                   # "fused_column" | "row" | "replicated" | "vocab"


def check_architecture(model_type: str) -> None:
    if model_type not in SUPPORTED_ARCHITECTURES:
        raise ValueError(f"rollout.engine=tensorrt_llm refit checks know the fused parameters of "
                         f"{list(SUPPORTED_ARCHITECTURES)}, not model_type={model_type!r}")


def engine_tensor(hf_name: str, model_type: str) -> EngineTensor:
    """The engine tensor holding ``hf_name`` for a model of ``model_type``."""
    check_architecture(model_type)
    match = _LAYER.fullmatch(hf_name)
    if match:
        prefix, leaf, kind = match.groups()
        if leaf in _PART_OF:
            fused = _PART_OF[leaf]
            return EngineTensor(f"{prefix}.{fused}.{kind}",
                                tuple(f"{prefix}.{part}.{kind}" for part in _FUSED_PARTS[fused]), "fused_column")
        if leaf in _ROW_PARALLEL:
            return EngineTensor(hf_name, (hf_name,), "row")
        if leaf in _REPLICATED:
            return EngineTensor(hf_name, (hf_name,), "replicated")
    if hf_name == "model.norm.weight":
        return EngineTensor(hf_name, (hf_name,), "replicated")
    if hf_name in ("model.embed_tokens.weight", "lm_head.weight"):
        return EngineTensor(hf_name, (hf_name,), "vocab")
    raise KeyError(f"no engine parameter known for {hf_name!r} ({model_type})")


def expected_shard(target: EngineTensor, sources: Mapping[str, torch.Tensor], tp_rank: int, tp_size: int) -> torch.Tensor:
    """What engine rank ``tp_rank`` of ``tp_size`` holds under ``target.name``, built from the HF
    tensors the trainer sent."""
    missing = [name for name in target.sources if name not in sources]
    if missing:
        raise KeyError(f"cannot rebuild {target.name}: the refit sent no {missing}")
    parts = [sources[name] for name in target.sources]
    if tp_size == 1:
        return torch.cat(parts, dim=0) if len(parts) > 1 else parts[0]
    if target.layout == "vocab":
        raise ValueError(f"{target.name} is vocabulary-sharded with tensor_parallel_size={tp_size}; "
                         "verify a norm, attention or MLP tensor instead")
    if target.layout == "replicated":
        return parts[0]
    dim = 1 if target.layout == "row" else 0
    for name, part in zip(target.sources, parts):
        if part.shape[dim] % tp_size:
            raise ValueError(f"{name} has {part.shape[dim]} rows/columns, not divisible by tensor_parallel_size="
                             f"{tp_size} (the engine replicates such KV heads); verify another tensor")
    return torch.cat([torch.chunk(part, tp_size, dim=dim)[tp_rank] for part in parts], dim=0)
