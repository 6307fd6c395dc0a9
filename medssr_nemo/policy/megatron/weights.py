"""Moving whole-model weights in and out of a tensor/pipeline-parallel GPTModel.

``load_hf_weights`` copies each rank's slice of a Hugging Face checkpoint into its stage of the
model (each rank reads only the tensors its stage needs). ``iter_hf_weights`` goes the other way:
it gathers every tensor over tensor parallelism on the stage that owns it, converts it to the HF
layout and broadcasts it over the pipeline, so every rank yields the full model, tensor by tensor.
The per-tensor maths lives in ``conversion.py``.
"""

from __future__ import annotations

from typing import Iterator

import torch
import torch.distributed as dist

from medssr_nemo.policy.megatron import conversion
from medssr_nemo.policy.megatron.model import ArchSpec


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The GPTModel inside DDP / Float16Module wrappers."""
    while hasattr(model, "module") and not hasattr(model, "decoder"):
        model = model.module
    return model


def _layer_offset(gpt: torch.nn.Module) -> int:
    layers = getattr(getattr(gpt, "decoder", None), "layers", None)
    if not layers:
        return 0
    return int(layers[0].layer_number) - 1  # megatron numbers layers globally from 1


def local_parameters(model: torch.nn.Module) -> dict[str, torch.nn.Parameter]:
    """This stage's parameters by canonical (global-layer) name."""
    gpt = unwrap(model)
    offset = _layer_offset(gpt)
    # (TransformerEngine may register empty placeholders, e.g. a bias of a bias-free linear)
    return {conversion.model_param_to_canonical(name, offset): param for name, param in gpt.named_parameters()
            if param.numel() > 0}


def _source_name(name: str, arch: ArchSpec) -> str:
    # With tied embeddings and several pipeline stages the last stage keeps its own copy of the
    # embedding as output layer (gradients are summed across the two); it starts as the embedding.
    if name == "output_layer.weight" and arch.tied_embeddings:
        return "embedding.word_embeddings.weight"
    return name


@torch.no_grad()
def load_hf_weights(model: torch.nn.Module, arch: ArchSpec, weights: conversion.HFWeights) -> None:
    """Copy this rank's slice of ``weights`` into its stage of ``model``; every parameter is set."""
    from megatron.core import parallel_state

    tp_rank = parallel_state.get_tensor_model_parallel_rank()
    tp_size = parallel_state.get_tensor_model_parallel_world_size()
    params = local_parameters(model)
    conversion.hf_to_canonical_sources_check(sorted({_source_name(n, arch) for n in params}), weights.names())
    for name, param in params.items():
        source = _source_name(name, arch)
        full = weights.canonical(source, arch)
        shard = conversion.tp_shard(source, full, tp_rank, tp_size)
        if tuple(shard.shape) != tuple(param.shape):
            raise ValueError(f"HF tensor(s) {conversion.hf_sources(source)} give Megatron {name!r} the shape "
                             f"{tuple(shard.shape)} on TP rank {tp_rank}, the model expects {tuple(param.shape)}")
        param.data.copy_(shard.to(param.dtype))


def _owners(model: torch.nn.Module, names: list[str]) -> dict[str, int]:
    """Which pipeline stage holds each canonical tensor (the first stage for the embedding)."""
    from megatron.core import parallel_state

    mine = set(local_parameters(model))
    if parallel_state.get_pipeline_model_parallel_world_size() == 1:
        return {name: 0 for name in names}
    group = parallel_state.get_pipeline_model_parallel_group()
    stages: list = [None] * dist.get_world_size(group)
    dist.all_gather_object(stages, sorted(mine), group=group)
    owners: dict[str, int] = {}
    for stage, held in enumerate(stages):
        for name in held:
            owners.setdefault(name, stage)  # the embedding copy on the last stage is not its owner
    missing = [n for n in names if n not in owners]
    if missing:
        raise RuntimeError(f"no pipeline stage holds {missing[:3]}")
    return owners


def _full_shapes(name: str, arch: ArchSpec) -> list[tuple[str, torch.Size]]:
    """HF names and shapes of the tensors ``name`` exports to (computed without data)."""
    meta = torch.empty(canonical_shape(name, arch), device="meta")
    return [(hf_name, tensor.shape) for hf_name, tensor in conversion.to_hf(name, meta, arch)]


def canonical_shape(name: str, arch: ArchSpec) -> tuple[int, ...]:
    """Shape of the full (TP=1) canonical Megatron tensor ``name``."""
    h, d = arch.hidden_size, arch.head_dim
    qkv = (arch.num_attention_heads + 2 * arch.num_query_groups) * d
    suffix = name.split(".", 3)[-1] if name.startswith("decoder.layers.") else name
    return {
        "embedding.word_embeddings.weight": (arch.padded_vocab_size, h),
        "output_layer.weight": (arch.padded_vocab_size, h),
        "decoder.final_layernorm.weight": (h,),
        "input_layernorm.weight": (h,),
        "pre_mlp_layernorm.weight": (h,),
        "self_attention.linear_qkv.weight": (qkv, h),
        "self_attention.linear_qkv.bias": (qkv,),
        "self_attention.q_layernorm.weight": (d,),
        "self_attention.k_layernorm.weight": (d,),
        "self_attention.linear_proj.weight": (h, arch.num_attention_heads * d),
        "mlp.linear_fc1.weight": (2 * arch.ffn_hidden_size, h),
        "mlp.linear_fc2.weight": (h, arch.ffn_hidden_size),
    }[suffix]


@torch.no_grad()
def _gather_full(name: str, param: torch.Tensor) -> torch.Tensor:
    """The full canonical tensor from this stage's tensor-parallel slices."""
    from megatron.core import parallel_state

    tp_size = parallel_state.get_tensor_model_parallel_world_size()
    if tp_size == 1 or not conversion.is_tensor_parallel(name):
        return param.detach().clone()
    shard = param.detach().contiguous()
    shards = [torch.empty_like(shard) for _ in range(tp_size)]
    dist.all_gather(shards, shard, group=parallel_state.get_tensor_model_parallel_group())
    return conversion.tp_unshard(name, shards)


@torch.no_grad()
def iter_hf_weights(model: torch.nn.Module, arch: ArchSpec) -> Iterator[tuple[str, torch.Tensor]]:
    """Every HF-named tensor of the whole model, on every rank (collective: all ranks iterate)."""
    from megatron.core import parallel_state

    names = conversion.canonical_names(arch)
    params = local_parameters(model)
    owners = _owners(model, names)
    pp_group = parallel_state.get_pipeline_model_parallel_group()
    pp_size = parallel_state.get_pipeline_model_parallel_world_size()
    pp_rank = parallel_state.get_pipeline_model_parallel_rank()
    pp_ranks = dist.get_process_group_ranks(pp_group) if pp_size > 1 else [dist.get_rank()]
    dtype = next(iter(params.values())).dtype
    device = next(iter(params.values())).device
    for name in names:
        owner = owners[name]
        if owner == pp_rank:
            pieces = conversion.to_hf(name, _gather_full(name, params[name]), arch)
            pieces = [(hf_name, tensor.contiguous()) for hf_name, tensor in pieces]
        else:
            pieces = [(hf_name, torch.empty(shape, dtype=dtype, device=device)) for hf_name, shape in _full_shapes(name, arch)]
        for hf_name, tensor in pieces:
            if pp_size > 1:
                dist.broadcast(tensor, src=pp_ranks[owner], group=pp_group)
            yield hf_name, tensor
