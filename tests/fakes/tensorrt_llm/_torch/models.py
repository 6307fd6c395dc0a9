"""FAKE of TensorRT-LLM's PyTorch models (``_torch/models/modeling_llama.py``, ``modeling_qwen.py``,
``modeling_qwen3.py``) as far as a refit can see them: parameters under the engine's FUSED names
(``self_attn.qkv_proj`` = q, k, v stacked; ``mlp.gate_up_proj`` = gate, up stacked), sharded for
this worker's tensor-parallel rank (fused column-parallel: each part's rank-chunk, then stacked;
``o_proj``/``down_proj`` row-parallel: a chunk of the input dimension; ``lm_head`` a vocab chunk;
norms and embeddings replicated), loaded from Hugging Face names, with the weight hooks a reload
runs (``pre_reload_weights``, ``process_weights_after_loading``, ``post_load_weights``).

Compute runs on a full Hugging Face copy kept beside the sharded parameters (the fake has no
tensor-parallel kernels); the loader writes every tensor to both.
"""

from __future__ import annotations

import re
from typing import Any

import torch

_FUSED = {  # HF leaf -> (engine leaf, part index, number of parts)
    "self_attn.q_proj": ("self_attn.qkv_proj", 0, 3),
    "self_attn.k_proj": ("self_attn.qkv_proj", 1, 3),
    "self_attn.v_proj": ("self_attn.qkv_proj", 2, 3),
    "mlp.gate_proj": ("mlp.gate_up_proj", 0, 2),
    "mlp.up_proj": ("mlp.gate_up_proj", 1, 2),
}
_ROW_PARALLEL = ("self_attn.o_proj.weight", "mlp.down_proj.weight")
SUPPORTED = ("llama", "qwen2", "qwen3")


def _engine_key(hf_name: str) -> tuple[str, int, int] | None:
    match = re.fullmatch(r"(model\.layers\.\d+)\.(self_attn\.[qkv]_proj|mlp\.(?:gate|up)_proj)\.(weight|bias)", hf_name)
    if not match:
        return None
    prefix, leaf, kind = match.groups()
    fused, part, parts = _FUSED[leaf]
    return f"{prefix}.{fused}.{kind}", part, parts


class FusedCausalLM(torch.nn.Module):
    def __init__(self, hf_model: torch.nn.Module, tp_rank: int, tp_size: int, events: list) -> None:
        super().__init__()
        if hf_model.config.model_type not in SUPPORTED:
            raise NotImplementedError(f"fake engine model for {hf_model.config.model_type}")
        object.__setattr__(self, "hf", hf_model)          # not a registered submodule
        object.__setattr__(self, "_events", events)
        self.config = hf_model.config
        self.tp_rank, self.tp_size = tp_rank, tp_size
        self._layout: dict[str, list[str]] = {}          # engine name -> HF names in stacking order
        state = hf_model.state_dict()
        for name in state:
            key = _engine_key(name)
            if key is None:
                self._layout[name] = [name]
            else:
                parts = self._layout.setdefault(key[0], [""] * key[2])
                parts[key[1]] = name
        for engine_name in self._layout:
            self._register(engine_name, self._shard(engine_name, state))

    # ------------------------------------------------------------------ layout
    def _register(self, dotted: str, tensor: torch.Tensor) -> None:
        module: torch.nn.Module = self
        *path, leaf = dotted.split(".")
        for part in path:
            if part not in module._modules:
                module.add_module(part, torch.nn.Module())
            module = module._modules[part]
        module.register_parameter(leaf, torch.nn.Parameter(tensor.detach().clone(), requires_grad=False))

    def _shard(self, engine_name: str, state: dict[str, torch.Tensor]) -> torch.Tensor:
        sources = [state[n] for n in self._layout[engine_name]]
        rank, size = self.tp_rank, self.tp_size
        if len(sources) > 1:   # fused column-parallel: chunk each part, then stack
            return torch.cat([torch.chunk(s, size, dim=0)[rank] for s in sources], dim=0)
        tensor = sources[0]
        if engine_name.endswith(_ROW_PARALLEL):
            return torch.chunk(tensor, size, dim=1)[rank]
        if engine_name == "lm_head.weight":
            return torch.chunk(tensor, size, dim=0)[rank]
        return tensor

    # ------------------------------------------------------------------ what a reload runs
    def load_hf_weights(self, weights: dict[str, torch.Tensor]) -> None:
        hf_params = self.hf.state_dict(keep_vars=True)   # tied names included (lm_head = embed_tokens)
        touched = set()
        for name, tensor in weights.items():
            if name not in hf_params:
                raise KeyError(f"unknown weight {name}")
            if tuple(hf_params[name].shape) != tuple(tensor.shape):
                raise ValueError(f"shape mismatch for {name}: {tuple(tensor.shape)} vs {tuple(hf_params[name].shape)}")
            with torch.no_grad():
                hf_params[name].copy_(tensor.to(hf_params[name].dtype))
            key = _engine_key(name)
            touched.add(key[0] if key else name)
        state = self.hf.state_dict()
        params = dict(self.named_parameters())
        with torch.no_grad():
            for engine_name in touched:
                params[engine_name].copy_(self._shard(engine_name, state))

    def pre_reload_weights(self) -> None:
        self._events.append("hook:pre_reload_weights")

    def process_weights_after_loading(self) -> None:
        self._events.append("hook:process_weights_after_loading")

    def post_load_weights(self) -> None:
        self._events.append("hook:post_load_weights")

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.hf(*args, **kwargs)
