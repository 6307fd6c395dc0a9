"""Hugging Face <-> megatron-core weight mapping for Llama, Qwen2 and Qwen3 (written here because
Megatron-Bridge 0.3.1 imports TransformerEngine unconditionally and scatters row-parallel weights
wrongly on CPU).

Three layers, each a pure function of tensors so tests can check them without processes:

* **names and layouts** (``hf_sources``/``to_megatron``/``to_hf``): one *full* (tensor-parallel
  size 1) Megatron tensor per canonical name, built from or split into HF tensors. Only two
  layouts differ from HF: ``linear_qkv`` stacks, per key/value group, that group's query heads,
  then its key head, then its value head; ``linear_fc1`` is ``[gate; up]``. The vocabulary is
  padded with zero rows (Megatron pads it to a TP-friendly size); export drops them again.
* **tensor-parallel slicing** (``tp_shard``/``tp_unshard``): column-parallel weights split along
  dim 0 (``linear_fc1`` splits gate and up separately, so each rank holds ``[gate_r; up_r]``),
  row-parallel ones along dim 1, norms are replicated.
* **reading a checkpoint** (``HFWeights``): safetensors files opened lazily, so each rank reads
  only the tensors of its own pipeline stage.

Canonical names are megatron-core's local-spec names with the *global* layer index
(``decoder.layers.{i}.…``); ``model_param_to_canonical`` maps a rank's parameter name to them
(pipeline stages number their layers from 0, TE specs fuse the norms into the next linear).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Iterator, Mapping

import torch

from medssr_nemo.policy.megatron.model import ArchSpec

_LAYER = re.compile(r"^decoder\.layers\.(\d+)\.(.+)$")
_HF_LAYER = re.compile(r"^model\.layers\.(\d+)\.(.+)$")

# canonical per-layer suffix -> HF per-layer suffix, for the one-to-one tensors
_LAYER_ONE_TO_ONE = {
    "input_layernorm.weight": "input_layernorm.weight",
    "pre_mlp_layernorm.weight": "post_attention_layernorm.weight",
    "self_attention.linear_proj.weight": "self_attn.o_proj.weight",
    "self_attention.q_layernorm.weight": "self_attn.q_norm.weight",
    "self_attention.k_layernorm.weight": "self_attn.k_norm.weight",
    "mlp.linear_fc2.weight": "mlp.down_proj.weight",
}
# TransformerEngine specs fuse each RMSNorm into the linear that follows it.
_TE_NAMES = {
    "input_layernorm.weight": "self_attention.linear_qkv.layer_norm_weight",
    "pre_mlp_layernorm.weight": "mlp.linear_fc1.layer_norm_weight",
}
_COLUMN_PARALLEL = ("embedding.word_embeddings.weight", "output_layer.weight",
                    "self_attention.linear_qkv.weight", "self_attention.linear_qkv.bias",
                    "mlp.linear_fc1.weight")
_ROW_PARALLEL = ("self_attention.linear_proj.weight", "mlp.linear_fc2.weight")


def canonical_names(arch: ArchSpec) -> list[str]:
    """Every Megatron tensor of the whole model (all stages), in export order."""
    names = ["embedding.word_embeddings.weight"]
    for i in range(arch.num_layers):
        per_layer = ["input_layernorm.weight", "self_attention.linear_qkv.weight"]
        if arch.qkv_bias:
            per_layer.append("self_attention.linear_qkv.bias")
        if arch.qk_norm:
            per_layer += ["self_attention.q_layernorm.weight", "self_attention.k_layernorm.weight"]
        per_layer += ["self_attention.linear_proj.weight", "pre_mlp_layernorm.weight",
                      "mlp.linear_fc1.weight", "mlp.linear_fc2.weight"]
        names += [f"decoder.layers.{i}.{suffix}" for suffix in per_layer]
    names.append("decoder.final_layernorm.weight")
    if not arch.tied_embeddings:
        names.append("output_layer.weight")
    return names


def _split_layer(name: str) -> tuple[int | None, str]:
    match = _LAYER.match(name)
    return (int(match.group(1)), match.group(2)) if match else (None, name)


def hf_sources(name: str) -> list[str]:
    """The HF tensors the canonical Megatron tensor ``name`` is built from."""
    layer, suffix = _split_layer(name)
    if layer is None:
        return {"embedding.word_embeddings.weight": ["model.embed_tokens.weight"],
                "output_layer.weight": ["lm_head.weight"],
                "decoder.final_layernorm.weight": ["model.norm.weight"]}[name]
    prefix = f"model.layers.{layer}."
    if suffix in _LAYER_ONE_TO_ONE:
        return [prefix + _LAYER_ONE_TO_ONE[suffix]]
    if suffix.startswith("self_attention.linear_qkv."):
        kind = suffix.rsplit(".", 1)[1]
        return [f"{prefix}self_attn.{p}_proj.{kind}" for p in "qkv"]
    if suffix == "mlp.linear_fc1.weight":
        return [prefix + "mlp.gate_proj.weight", prefix + "mlp.up_proj.weight"]
    raise KeyError(f"no HF mapping for Megatron tensor {name!r}")


def _pad_vocab(tensor: torch.Tensor, arch: ArchSpec) -> torch.Tensor:
    if tensor.shape[0] != arch.vocab_size:
        raise ValueError(f"vocabulary tensor has {tensor.shape[0]} rows, config says {arch.vocab_size}")
    if arch.padded_vocab_size == arch.vocab_size:
        return tensor
    pad = tensor.new_zeros(arch.padded_vocab_size - arch.vocab_size, *tensor.shape[1:])
    return torch.cat([tensor, pad])


def to_megatron(name: str, hf_tensors: list[torch.Tensor], arch: ArchSpec) -> torch.Tensor:
    """The full canonical tensor ``name`` from its ``hf_sources`` (in that order)."""
    _, suffix = _split_layer(name)
    if suffix in ("embedding.word_embeddings.weight", "output_layer.weight"):
        return _pad_vocab(hf_tensors[0], arch)
    if suffix.startswith("self_attention.linear_qkv."):
        q, k, v = hf_tensors
        groups, per_group, d = arch.num_query_groups, arch.heads_per_group, arch.head_dim
        trailing = q.shape[1:]  # (hidden,) for weights, () for biases
        q = q.reshape(groups, per_group * d, *trailing)
        k = k.reshape(groups, d, *trailing)
        v = v.reshape(groups, d, *trailing)
        return torch.cat([q, k, v], dim=1).reshape(groups * (per_group + 2) * d, *trailing)
    if suffix == "mlp.linear_fc1.weight":
        return torch.cat(hf_tensors, dim=0)
    (tensor,) = hf_tensors
    return tensor


def to_hf(name: str, full: torch.Tensor, arch: ArchSpec) -> list[tuple[str, torch.Tensor]]:
    """Split the full canonical tensor ``name`` back into HF-named tensors (inverse of ``to_megatron``)."""
    sources = hf_sources(name)
    _, suffix = _split_layer(name)
    if suffix in ("embedding.word_embeddings.weight", "output_layer.weight"):
        return [(sources[0], full[: arch.vocab_size])]
    if suffix.startswith("self_attention.linear_qkv."):
        groups, per_group, d = arch.num_query_groups, arch.heads_per_group, arch.head_dim
        trailing = full.shape[1:]
        grouped = full.reshape(groups, (per_group + 2) * d, *trailing)
        q, k, v = torch.split(grouped, [per_group * d, d, d], dim=1)
        return [(sources[0], q.reshape(groups * per_group * d, *trailing)),
                (sources[1], k.reshape(groups * d, *trailing)),
                (sources[2], v.reshape(groups * d, *trailing))]
    if suffix == "mlp.linear_fc1.weight":
        gate, up = full.chunk(2, dim=0)
        return [(sources[0], gate), (sources[1], up)]
    return [(sources[0], full)]


def tp_shard(name: str, full: torch.Tensor, rank: int, size: int) -> torch.Tensor:
    """Rank ``rank``'s slice (of ``size``) of the full canonical tensor ``name`` (contiguous)."""
    _, suffix = _split_layer(name)
    if size == 1:
        return full
    if suffix == "mlp.linear_fc1.weight":
        gate, up = full.chunk(2, dim=0)
        return torch.cat([gate.chunk(size, dim=0)[rank], up.chunk(size, dim=0)[rank]]).contiguous()
    if suffix in _COLUMN_PARALLEL:
        return full.chunk(size, dim=0)[rank].contiguous()
    if suffix in _ROW_PARALLEL:
        return full.chunk(size, dim=1)[rank].contiguous()
    return full


def tp_unshard(name: str, shards: list[torch.Tensor]) -> torch.Tensor:
    """The full canonical tensor from every tensor-parallel rank's slice (inverse of ``tp_shard``)."""
    _, suffix = _split_layer(name)
    if len(shards) == 1:
        return shards[0]
    if suffix == "mlp.linear_fc1.weight":
        halves = [shard.chunk(2, dim=0) for shard in shards]
        return torch.cat([h[0] for h in halves] + [h[1] for h in halves])
    if suffix in _COLUMN_PARALLEL:
        return torch.cat(shards, dim=0)
    if suffix in _ROW_PARALLEL:
        return torch.cat(shards, dim=1)
    return shards[0]


def is_tensor_parallel(name: str) -> bool:
    _, suffix = _split_layer(name)
    return suffix in _COLUMN_PARALLEL or suffix in _ROW_PARALLEL


def model_param_to_canonical(param_name: str, layer_offset: int) -> str:
    """Canonical name of a GPTModel parameter on a pipeline stage whose first layer is ``layer_offset``.

    Accepts wrapper prefixes (``module.``) and TE's fused norm names.
    """
    name = param_name
    while name.startswith("module."):
        name = name[len("module."):]
    layer, suffix = _split_layer(name)
    if layer is None:
        return name
    for local, fused in _TE_NAMES.items():
        if suffix == fused:
            suffix = local
    return f"decoder.layers.{layer + layer_offset}.{suffix}"


def hf_to_canonical_sources_check(names: list[str], available: set[str]) -> None:
    """Raise naming the first HF tensor a model needs but the checkpoint lacks."""
    for name in names:
        for source in hf_sources(name):
            if source not in available:
                raise KeyError(f"HF checkpoint has no tensor {source!r} (needed for Megatron {name!r})")


class HFWeights:
    """Lazy reader of a Hugging Face checkpoint: a directory of safetensors, or an in-memory
    ``{name: tensor}`` (e.g. ``model.state_dict()`` of a transformers model)."""

    def __init__(self, source: str | Path | Mapping[str, torch.Tensor]):
        self._tensors: Mapping[str, torch.Tensor] | None = None
        self._files: dict[str, Path] = {}
        if isinstance(source, Mapping):
            self._tensors = source
            return
        directory = Path(source)
        index = directory / "model.safetensors.index.json"
        if index.exists():
            weight_map = json.loads(index.read_text())["weight_map"]
            self._files = {name: directory / file for name, file in weight_map.items()}
        elif (directory / "model.safetensors").exists():
            from safetensors import safe_open

            with safe_open(directory / "model.safetensors", framework="pt") as handle:
                self._files = {name: directory / "model.safetensors" for name in handle.keys()}
        else:
            raise FileNotFoundError(f"{directory} has neither model.safetensors nor "
                                    f"model.safetensors.index.json (a Hugging Face checkpoint is expected)")

    def names(self) -> set[str]:
        return set(self._tensors) if self._tensors is not None else set(self._files)

    def get(self, name: str) -> torch.Tensor:
        if self._tensors is not None:
            return self._tensors[name]
        from safetensors import safe_open

        if name not in self._files:
            raise KeyError(f"HF checkpoint has no tensor {name!r}")
        with safe_open(self._files[name], framework="pt") as handle:
            return handle.get_tensor(name)

    def canonical(self, name: str, arch: ArchSpec) -> torch.Tensor:
        """The full canonical Megatron tensor ``name``."""
        return to_megatron(name, [self.get(source) for source in hf_sources(name)], arch)


def iter_hf_from_full(full: Mapping[str, torch.Tensor], arch: ArchSpec) -> Iterator[tuple[str, Any]]:
    """HF tensors of a whole model given its full canonical tensors (single-process helper)."""
    for name in canonical_names(arch):
        yield from to_hf(name, full[name], arch)
