"""The megatron backend's pure parts, in one process: HF<->Megatron tensor mapping, tensor-parallel
slicing, architecture checks, options, the CPU bypasses and the plugin registration."""

from __future__ import annotations

import pytest
import torch
from transformers import LlamaConfig, Qwen2Config, Qwen3Config

from medssr_nemo.policy.megatron import conversion
from medssr_nemo.policy.megatron.model import arch_spec_from_hf, padded_vocab_size

SMALL = dict(vocab_size=50, hidden_size=8, intermediate_size=12, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, max_position_embeddings=64)


def _config(kind: str, **overrides):
    cls = {"llama": LlamaConfig, "qwen2": Qwen2Config, "qwen3": Qwen3Config}[kind]
    return cls(**{**SMALL, **overrides})


def _random_hf_state(arch) -> dict[str, torch.Tensor]:
    """A random HF state dict with exactly the tensors the architecture has."""
    gen = torch.Generator().manual_seed(0)
    h, d, f = arch.hidden_size, arch.head_dim, arch.ffn_hidden_size
    q, kv = arch.num_attention_heads * d, arch.num_query_groups * d
    shapes = {"model.embed_tokens.weight": (arch.vocab_size, h), "model.norm.weight": (h,)}
    if not arch.tied_embeddings:
        shapes["lm_head.weight"] = (arch.vocab_size, h)
    for i in range(arch.num_layers):
        p = f"model.layers.{i}."
        shapes.update({p + "input_layernorm.weight": (h,), p + "post_attention_layernorm.weight": (h,),
                       p + "self_attn.q_proj.weight": (q, h), p + "self_attn.k_proj.weight": (kv, h),
                       p + "self_attn.v_proj.weight": (kv, h), p + "self_attn.o_proj.weight": (h, q),
                       p + "mlp.gate_proj.weight": (f, h), p + "mlp.up_proj.weight": (f, h),
                       p + "mlp.down_proj.weight": (h, f)})
        if arch.qkv_bias:
            shapes.update({p + "self_attn.q_proj.bias": (q,), p + "self_attn.k_proj.bias": (kv,),
                           p + "self_attn.v_proj.bias": (kv,)})
        if arch.qk_norm:
            shapes.update({p + "self_attn.q_norm.weight": (d,), p + "self_attn.k_norm.weight": (d,)})
    return {name: torch.randn(shape, generator=gen) for name, shape in shapes.items()}


@pytest.mark.parametrize("kind,tied,tp,kv_heads", [("llama", True, 1, 2), ("llama", False, 2, 2), ("qwen2", True, 2, 2),
                                                   ("qwen3", False, 4, 4)])
def test_hf_megatron_hf_round_trip_is_bit_exact(kind, tied, tp, kv_heads):
    arch = arch_spec_from_hf(_config(kind, tie_word_embeddings=tied, num_key_value_heads=kv_heads), tp, vocab_multiple=8)
    assert arch.padded_vocab_size % (8 * tp) == 0 and arch.padded_vocab_size > arch.vocab_size  # 50 pads
    hf = _random_hf_state(arch)
    weights = conversion.HFWeights(hf)
    full = {name: weights.canonical(name, arch) for name in conversion.canonical_names(arch)}
    # through tensor-parallel slices and back, as the backend loads and exports
    full = {name: conversion.tp_unshard(name, [conversion.tp_shard(name, t, r, tp) for r in range(tp)])
            for name, t in full.items()}
    back = dict(conversion.iter_hf_from_full(full, arch))
    assert sorted(back) == sorted(hf)
    for name, tensor in hf.items():
        assert torch.equal(back[name], tensor), name


def test_qkv_layout_groups_query_heads_with_their_key_and_value():
    """Hand-worked: 4 query heads, 2 groups, head_dim 1, hidden 1. HF rows are q0 q1 q2 q3 | k0 k1
    | v0 v1; Megatron stacks per group: q0 q1 k0 v0 | q2 q3 k1 v1."""
    arch = arch_spec_from_hf(_config("llama", hidden_size=4, head_dim=1), 1)
    q = torch.tensor([[0.0], [1.0], [2.0], [3.0]])
    k = torch.tensor([[10.0], [11.0]])
    v = torch.tensor([[20.0], [21.0]])
    fused = conversion.to_megatron("decoder.layers.0.self_attention.linear_qkv.weight", [q, k, v], arch)
    assert fused.flatten().tolist() == [0, 1, 10, 20, 2, 3, 11, 21]


def test_fc1_slices_keep_gate_and_up_halves_per_rank():
    arch = arch_spec_from_hf(_config("llama"), 2)
    gate = torch.arange(12.0).unsqueeze(1)
    up = 100 + torch.arange(12.0).unsqueeze(1)
    name = "decoder.layers.1.mlp.linear_fc1.weight"
    full = conversion.to_megatron(name, [gate, up], arch)
    rank1 = conversion.tp_shard(name, full, 1, 2)
    assert rank1.flatten().tolist() == [6, 7, 8, 9, 10, 11, 106, 107, 108, 109, 110, 111]


def test_row_parallel_weights_split_along_the_input_dimension():
    full = torch.arange(24.0).reshape(4, 6)
    shard = conversion.tp_shard("decoder.layers.0.self_attention.linear_proj.weight", full, 1, 2)
    assert torch.equal(shard, full[:, 3:])
    assert shard.is_contiguous()  # gloo/NCCL send contiguous buffers only
    norm = torch.arange(4.0)
    assert conversion.tp_shard("decoder.layers.0.input_layernorm.weight", norm, 1, 2) is norm


def test_model_param_names_map_to_global_canonical_names():
    assert conversion.model_param_to_canonical("module.decoder.layers.0.mlp.linear_fc2.weight", 3) == \
        "decoder.layers.3.mlp.linear_fc2.weight"
    # TransformerEngine fuses the norm into the next linear layer
    assert conversion.model_param_to_canonical("decoder.layers.1.self_attention.linear_qkv.layer_norm_weight", 0) == \
        "decoder.layers.1.input_layernorm.weight"
    assert conversion.model_param_to_canonical("embedding.word_embeddings.weight", 5) == "embedding.word_embeddings.weight"


def test_missing_hf_tensor_is_named():
    arch = arch_spec_from_hf(_config("qwen3"), 1)
    hf = _random_hf_state(arch)
    del hf["model.layers.1.self_attn.k_norm.weight"]
    with pytest.raises(KeyError, match=r"model\.layers\.1\.self_attn\.k_norm\.weight"):
        conversion.hf_to_canonical_sources_check(conversion.canonical_names(arch), set(hf))


def test_hf_weights_reads_a_safetensors_directory(tmp_path):
    from safetensors.torch import save_file

    save_file({"model.norm.weight": torch.ones(3)}, str(tmp_path / "model.safetensors"))
    weights = conversion.HFWeights(tmp_path)
    assert weights.names() == {"model.norm.weight"}
    assert torch.equal(weights.get("model.norm.weight"), torch.ones(3))
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        conversion.HFWeights(tmp_path / "nowhere")


def test_padded_vocab_size():
    assert padded_vocab_size(49152, 2) == 49152
    assert padded_vocab_size(49152, 2, 100) == 49200
    assert padded_vocab_size(151936, 8) == 151552 + 1024  # Qwen3's vocabulary at TP8


def test_architecture_features_are_read_from_the_config():
    qwen2 = arch_spec_from_hf(_config("qwen2"), 1)
    qwen3 = arch_spec_from_hf(_config("qwen3", head_dim=4, rope_theta=1e6), 1)
    assert qwen2.qkv_bias and not qwen2.qk_norm
    assert qwen3.qk_norm and not qwen3.qkv_bias and qwen3.head_dim == 4 and qwen3.rope_theta == 1e6
    llama31 = arch_spec_from_hf(_config("llama", rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                                               "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}), 1)
    assert llama31.llama3_rope_factor == 8.0


@pytest.mark.parametrize("overrides,tp,message", [
    (dict(num_attention_heads=4, num_key_value_heads=1), 2, "num_key_value_heads=1 is not divisible by tensor_parallel_size=2"),
    (dict(hidden_act="gelu"), 1, "silu"),
    (dict(rope_scaling={"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32}), 1, "yarn"),
])
def test_unsupported_architectures_fail_clearly(overrides, tp, message):
    with pytest.raises(ValueError, match=message):
        arch_spec_from_hf(_config("llama", **overrides), tp)


def test_unknown_model_type_lists_the_supported_ones():
    from transformers import GPT2Config

    with pytest.raises(ValueError, match="gpt2.*llama, qwen2, qwen3"):
        arch_spec_from_hf(GPT2Config(), 1)


def test_options_are_checked():
    from medssr_nemo.policy.megatron.backend import check_options

    assert check_options({})["vocab_multiple"] == 128
    with pytest.raises(ValueError, match="does not know.*vocab_multple"):
        check_options({"vocab_multple": 64})
    with pytest.raises(ValueError, match="transformer_engine"):
        check_options({"transformer_engine": "yes"})


@pytest.mark.skipif(torch.cuda.is_available(), reason="the bypasses only act without CUDA")
def test_cpu_scope_sends_cuda_requests_to_the_cpu_and_only_inside(monkeypatch):
    from medssr_nemo.policy.megatron import cpu_compat

    # apply() patches torch.cuda for the process; give the rest of the session the originals back
    for name in ("current_device", "synchronize", "get_rng_state"):
        monkeypatch.setattr(torch.cuda, name, getattr(torch.cuda, name))
    monkeypatch.setattr(torch.cuda.random, "get_rng_state", torch.cuda.random.get_rng_state)
    monkeypatch.setattr(cpu_compat, "_applied", False)

    with cpu_compat.device_scope():
        made = torch.zeros(2, device="cuda")
        assert made.device.type == "cpu"
        assert made.cuda() is made
        assert made.type() == "torch.cuda.FloatTensor"
        assert torch.ones(1).to("cuda").device.type == "cpu"
        assert torch.cuda.current_device() == torch.device("cpu")
        assert torch.cuda.get_rng_state().numel() == 0
    assert made.type() == "torch.FloatTensor"
    with pytest.raises((RuntimeError, AssertionError)):
        torch.zeros(1, device="cuda")


def test_megatron_backend_is_registered():
    from medssr_nemo import registry

    registry.load_plugins()
    factory = registry.get("policy_backend", "megatron")
    assert factory.__name__ == "build_megatron_backend"
