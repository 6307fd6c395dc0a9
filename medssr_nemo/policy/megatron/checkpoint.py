"""Checkpoints of the megatron backend: ``dist_checkpointing`` for model + optimiser, a Hugging
Face directory for the final policy.

``dist_checkpointing`` stores every tensor by its *global* shape and offset, so a checkpoint
written under one TP x PP x DP layout loads under another. The distributed optimiser's state uses
the ``fully_reshardable`` format (per-parameter tensors in the model's own index space) for the
same reason. Small state (optimiser step count, layout) rides along as common state.

Writes are atomic: everything goes into a temporary sibling directory that is renamed over the
target once complete (collective: every rank calls; rank 0 renames).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Iterable

import torch
import torch.distributed as dist

from medssr_nemo.artifacts import replace_directory
from medssr_nemo.policy.megatron import cpu_compat

OPTIMIZER_SHARDING = {"distrib_optim_sharding_type": "fully_reshardable"}
STATE_FILE = "medssr_backend_state.json"  # human-readable summary next to megatron's files


def _rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def _barrier() -> None:
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()


def _temp_sibling(final: Path) -> Path:
    return final.with_name(f".{final.name}.tmp")


def _publish(tmp: Path, final: Path) -> None:
    """Rename a complete ``tmp`` over ``final`` (rank 0), then let every rank see it."""
    if _rank() == 0:
        replace_directory(tmp, final)
    _barrier()


def _prepare_temp(final: Path) -> Path:
    tmp = _temp_sibling(final)
    if _rank() == 0:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    _barrier()
    return tmp


def _inner(model: torch.nn.Module) -> torch.nn.Module:
    # The DDP wrapper's sharded_state_dict names keys "module.*" but its load_state_dict expects
    # them without; its inner module is consistent (and keeps names free of wrapper prefixes).
    return getattr(model, "module", model)


def sharded_state(model: torch.nn.Module, optimizer: Any, state: dict[str, Any], *, loading: bool) -> dict[str, Any]:
    """The state dict template ``dist_checkpointing`` saves from or loads into."""
    model_state = _inner(model).sharded_state_dict()
    return {
        "model": model_state,
        "optimizer": optimizer.sharded_state_dict(model_state, is_loading=loading, metadata=OPTIMIZER_SHARDING),
        "backend_state": state,
    }


def save_checkpoint(directory: str | os.PathLike, model: torch.nn.Module, optimizer: Any, state: dict[str, Any]) -> None:
    """Write model, optimiser and ``state`` (JSON-able) to ``directory``, atomically."""
    from megatron.core import dist_checkpointing

    final = Path(directory)
    tmp = _prepare_temp(final)
    dist_checkpointing.save(sharded_state(model, optimizer, state, loading=False), str(tmp))
    if _rank() == 0:
        (tmp / STATE_FILE).write_text(json.dumps(state, indent=2, sort_keys=True))
    _barrier()
    _publish(tmp, final)


def load_checkpoint(directory: str | os.PathLike, model: torch.nn.Module, optimizer: Any) -> dict[str, Any]:
    """Restore what ``save_checkpoint`` wrote (under any layout); returns the saved ``state``."""
    from megatron.core import dist_checkpointing

    directory = Path(directory)
    if not dist_checkpointing.check_is_distributed_checkpoint(str(directory)):
        raise FileNotFoundError(f"{directory} is not a megatron policy checkpoint (no dist_checkpointing "
                                f"metadata.json); it was not written by the megatron backend's save()")
    cpu_compat.prepare_optimizer_for_load(optimizer)
    template = sharded_state(model, optimizer, {}, loading=True)
    template.pop("backend_state")
    loaded = dist_checkpointing.load(template, str(directory))
    _inner(model).load_state_dict(loaded["model"])
    optimizer.load_state_dict(loaded["optimizer"])
    cpu_compat.finish_optimizer_load(optimizer)
    state = loaded.get("backend_state")
    if state is None:  # common state is not part of the template: read it from the common file
        state = dist_checkpointing.load_common_state_dict(str(directory))["backend_state"]
    return dict(state)


def save_hf_checkpoint(directory: str | os.PathLike, tensors: Iterable[tuple[str, torch.Tensor]],
                       hf_config: Any, tokenizer: Any, generation_config: Any = None,
                       max_shard_size: str = "5GB") -> None:
    """Write a Hugging Face directory (sharded safetensors + index, config, tokenizer) from a
    stream of HF-named tensors. Collective: every rank consumes ``tensors``; rank 0 writes."""
    from huggingface_hub import split_torch_state_dict_into_shards
    from safetensors.torch import save_file

    final = Path(directory)
    main = _rank() == 0
    state: dict[str, torch.Tensor] = {}
    for name, tensor in tensors:
        if main:
            state[name] = tensor.detach().to("cpu", copy=True).contiguous()
    if main:
        tmp = _temp_sibling(final)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        split = split_torch_state_dict_into_shards(state, max_shard_size=max_shard_size)
        for filename, names in split.filename_to_tensors.items():
            save_file({n: state[n] for n in names}, str(tmp / filename), metadata={"format": "pt"})
        if split.is_sharded:
            index = {"metadata": {"total_size": sum(t.numel() * t.element_size() for t in state.values())},
                     "weight_map": split.tensor_to_filename}
            (tmp / "model.safetensors.index.json").write_text(json.dumps(index, indent=2, sort_keys=True))
        hf_config.save_pretrained(tmp)
        if generation_config is not None:
            generation_config.save_pretrained(tmp)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
    _barrier()
    _publish(_temp_sibling(final), final)
