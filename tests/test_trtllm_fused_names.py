"""Refit checks on what a TensorRT-LLM engine HOLDS: Hugging Face names -> fused, sharded engine
parameters (qkv_proj, gate_up_proj) for tiny Llama, Qwen2 and Qwen3 models, hand-worked and
against the fake engine's own layout, then end to end through a refit."""

from __future__ import annotations

import socket

import pytest
import torch

from medssr_nemo.models import make_tiny_model, save_tiny_model
from medssr_nemo.rollout.trtllm.fused_names import engine_tensor, expected_shard

ARCHES = ("llama", "qwen2", "qwen3")



def test_qkv_and_gate_up_are_stacked_in_order_hand_worked():
    target = engine_tensor("model.layers.1.self_attn.k_proj.weight", "llama")
    assert target.name == "model.layers.1.self_attn.qkv_proj.weight" and target.layout == "fused_column"
    assert target.sources == tuple(f"model.layers.1.self_attn.{p}_proj.weight" for p in "qkv")
    q, k, v = torch.arange(8.).reshape(4, 2), 100 + torch.arange(4.).reshape(2, 2), 200 + torch.arange(4.).reshape(2, 2)
    sources = dict(zip(target.sources, (q, k, v)))
    assert torch.equal(expected_shard(target, sources, 0, 1), torch.cat([q, k, v]))
    # TP 2, rank 1: the second half of q's rows, then of k's, then of v's
    assert expected_shard(target, sources, 1, 2).tolist() == [[4, 5], [6, 7], [102, 103], [202, 203]]
    bias = engine_tensor("model.layers.0.self_attn.v_proj.bias", "qwen2")
    assert bias.name == "model.layers.0.self_attn.qkv_proj.bias"
    gate_up = engine_tensor("model.layers.0.mlp.up_proj.weight", "qwen3")
    assert gate_up.name == "model.layers.0.mlp.gate_up_proj.weight" and gate_up.sources[0].endswith("gate_proj.weight")
    down = engine_tensor("model.layers.0.mlp.down_proj.weight", "qwen3")
    assert expected_shard(down, {down.name: torch.arange(8.).reshape(2, 4)}, 1, 2).tolist() == [[2, 3], [6, 7]]
    assert engine_tensor("model.layers.0.self_attn.q_norm.weight", "qwen3").layout == "replicated"


def test_unknown_architecture_and_vocab_sharded_checks_are_refused():
    with pytest.raises(ValueError, match="model_type='gpt2'"):
        engine_tensor("model.norm.weight", "gpt2")
    head = engine_tensor("lm_head.weight", "llama")
    with pytest.raises(ValueError, match="vocabulary-sharded"):
        expected_shard(head, {"lm_head.weight": torch.zeros(4, 2)}, 0, 2)


@pytest.mark.parametrize("arch", ARCHES)
@pytest.mark.parametrize("tp", [1, 2])
def test_mapping_rebuilds_every_fused_shard_the_fake_engine_holds(fake_trtllm, arch, tp):
    from tensorrt_llm._torch.models import FusedCausalLM

    model = make_tiny_model(arch, seed=3)[0]
    state = model.state_dict()
    fused_seen = set()
    for rank in range(tp):
        engine_model = FusedCausalLM(model, rank, tp, [])
        held = dict(engine_model.named_parameters())
        for hf_name in state:
            target = engine_tensor(hf_name, arch)
            assert target.name in held, f"{arch}: engine has no {target.name}"
            if tp > 1 and target.layout == "vocab":
                continue
            assert torch.equal(expected_shard(target, state, rank, tp), held[target.name]), (arch, hf_name, rank)
            fused_seen.add(target.name.rsplit(".", 2)[-2])
    assert {"qkv_proj", "gate_up_proj"} <= fused_seen
    assert not any(n.endswith(("q_proj.weight", "gate_proj.weight")) for n in held)   # only fused names


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("arch", ARCHES)
def test_refit_is_verified_on_the_fused_shards_each_engine_worker_holds(fake_trtllm, tmp_path, arch):
    from transformers import AutoTokenizer

    from medssr_nemo.rollout.trtllm.engine import TensorRTLLMEngine
    from medssr_nemo.rollout.trtllm.options import TrtllmOptions
    from medssr_nemo.rollout.trtllm.refit import StaleWeightsError

    path = str(save_tiny_model(tmp_path / arch, arch, seed=0))
    verify = ("model.layers.0.self_attn.k_proj.weight", "model.layers.1.mlp.up_proj.weight", "model.norm.weight")
    options = TrtllmOptions(dtype="float32", placement="separate", tensor_parallel_size=2, bucket_mb=1,
                            refit_backend="gloo", refit_master_addr="127.0.0.1", refit_master_port=_free_port(),
                            verify_tensors=verify)
    engine = TensorRTLLMEngine(path, AutoTokenizer.from_pretrained(path), options, trtllm=fake_trtllm)
    policy = make_tiny_model(arch, seed=1)[0]
    named = list(policy.state_dict().items())
    engine.update_weights(named)
    report_names = {"model.layers.0.self_attn.qkv_proj.weight", "model.layers.1.mlp.gate_up_proj.weight",
                    "model.norm.weight"}
    assert set(engine.refitter.targets[n].name for n in verify) == report_names
    # worker 1 silently loses the k projection: only the fused qkv check can see it
    engine.llm.workers[1].engine.drop_weights = {"model.layers.0.self_attn.k_proj.weight"}
    shifted = [(n, t + 0.5 if n.endswith("k_proj.weight") else t) for n, t in named]
    with pytest.raises(StaleWeightsError, match=r"worker 1: checksum of 'model.layers.0.self_attn.qkv_proj.weight'"):
        engine.update_weights(shifted)
    engine.shutdown()
