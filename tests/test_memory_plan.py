"""The preflight memory plan (medssr_nemo/launch/memory.py): hand-worked terms, parameter counts
against models built on the meta device, every shipped size fitting an 80 GB GPU, an oversized
setting refused by `medssr launch` and `medssr train`, and docs/cluster.md's table."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from medssr_nemo.cli.main import main as medssr
from medssr_nemo.config import load_config
from medssr_nemo.launch import memory
from medssr_nemo.launch.memory import (
    ARCHITECTURES,
    SIZES,
    Architecture,
    MemoryPlanError,
    activation_bytes_per_layer,
    plan,
    preflight,
    shipped,
)

ROOT = Path(__file__).resolve().parent.parent
MODEL_FILES = sorted(p.stem for p in (ROOT / "conf" / "model").glob("*.yaml"))


def test_every_model_file_is_in_the_plan_table():
    assert sorted(SIZES) == MODEL_FILES


@pytest.mark.parametrize("size", MODEL_FILES)
def test_parameter_count_equals_the_model_built_on_the_meta_device(size):
    from transformers import AutoModelForCausalLM

    arch = ARCHITECTURES[shipped(size).model.path]
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(arch.hf_config())
    assert arch.parameters() == sum(p.numel() for p in model.parameters())  # tied weights counted once


def test_parameter_count_matches_the_embedded_models_own_config():
    """The table's SmolLM2 numbers are those of the bundled checkpoint's config.json."""
    from medssr_nemo.models import resolve_model_dir

    bundled = memory.architecture_of(str(resolve_model_dir("embedded:smollm2-135m-instruct")))
    assert bundled == ARCHITECTURES["embedded:smollm2-135m-instruct"]


@pytest.mark.parametrize("size", MODEL_FILES)
def test_every_model_file_fits_an_80_gb_gpu_at_its_shipped_layout(size):
    cfg = shipped(size)
    p = plan(cfg)
    assert p.fits, memory.describe(p)
    assert preflight(cfg) is p or preflight(cfg) == p
    if cfg.policy.backend == "megatron":
        s = p.settings
        assert s.recompute and s.micro_tokens == cfg.policy.options["pack_tokens"]
        assert s.sequence_parallel == (s.tp > 1)
        assert s.offload_reference and s.offload_rollout_copy and s.distributed_optimizer


def test_qwen3_8b_terms_worked_by_hand():
    p = plan(shipped("qwen3_8b"))
    assert p.parameters == 8_190_735_360
    assert (p.tp, p.pp, p.dp) == (2, 1, 4)
    # per layer 192,946,432 parameters, of which norms 2*4096 + 2*128 = 8,448 stay whole under TP:
    # (192,937,984 / 2 + 8,448) x 36 = 3,473,187,840; vocabulary padded to 152,064 (128 x TP
    # multiple) / 2 x 4,096 x 2 (untied) = 622,854,144; final norm 4,096
    assert p.parameters_per_gpu == 4_096_046_080
    assert p.weights == 2 * 4_096_046_080 and p.grads == 4 * 4_096_046_080
    assert p.optimizer == 12 * 4_096_046_080 // 4            # distributed optimizer over DP 4
    # full recompute, sequence parallel, T = 16,384: each layer keeps its input 2 T h / t =
    # 67,108,864 (x 36), plus one layer rebuilt: T (8h + 4q + 4kv + 6F) / t = 16,384 x 126,976 / 2
    assert p.activations == 36 * 67_108_864 + 1_040_187_392
    # KV: 96 sequences x (1,024 + 2,048) tokens x 2 x 36 x 8 x 128 x 2 B
    assert p.kv_cache == 96 * 3072 * 147_456
    assert p.engine_weights == 2 * 8_190_735_360             # the in-process engine's whole bf16 copy
    assert p.phases()["generation"] == p.weights + p.engine_weights + p.kv_cache


def test_activation_formula_reduces_to_korthikanti_for_a_gpt_layer():
    """With q = kv = h and F = 8h/3 (a SwiGLU MLP with a GPT MLP's parameters) the TP-split part is
    4 + 4 + 6F/h = 24 per token and h: s b h (8 + 24 / t), Korthikanti et al.'s s b h (10 + 24 / t)
    without the two dropout masks (no dropout in GRPO); sequence parallel: s b h 32 / t."""
    h = 1536
    arch = Architecture("llama", h, 1, 12, 12, 128, 8 * h // 3, 1000, True, False)
    tokens = 4096
    for t in (1, 2, 4, 8):
        assert activation_bytes_per_layer(arch, tokens, t, False) == tokens * h * 8 + tokens * h * 24 // t
        assert activation_bytes_per_layer(arch, tokens, t, True) == tokens * h * 32 // t


def test_recompute_and_sequence_parallel_shrink_activations():
    base = ["model=qwen3_8b", "policy.options.pack_tokens=16384"]
    full = plan(load_config("base", [*base, "policy.gradient_checkpointing=false",
                                     "+policy.options.sequence_parallel=off"]))
    sp = plan(load_config("base", [*base, "policy.gradient_checkpointing=false"]))
    recompute = plan(load_config("base", base))
    assert full.activations > sp.activations > recompute.activations
    assert full.activations - sp.activations == 36 * 16384 * 8 * 4096 // 2  # the 8h replicated part, split over TP 2


def test_oversized_setting_is_refused_by_launch_with_the_settings_to_change(capsys):
    code = medssr(["launch", "--dry-run", "model=qwen3_8b", "policy.options.pack_tokens=65536",
                   "policy.gradient_checkpointing=false"])
    err = capsys.readouterr().err
    assert code == 1
    assert "needs" in err and "update phase" in err and "74.0 GiB available" in err
    assert "policy.gradient_checkpointing=true" in err and "policy.options.pack_tokens" in err


def test_oversized_rollout_batch_is_refused_naming_the_engine_batch():
    cfg = load_config("base", ["model=qwen3_32b", "rollout.batch_size=64"])
    with pytest.raises(MemoryPlanError, match="generation phase") as err:
        preflight(cfg)
    assert "rollout.batch_size=64" in str(err.value)
    off = load_config("base", ["model=qwen3_32b", "rollout.batch_size=64", "launch.preflight=false"])
    assert preflight(off) is None


def test_train_refuses_at_start_on_a_gpu_and_not_on_a_cpu(monkeypatch, capsys, tmp_path):
    args = ["train", "model=qwen3_8b", "policy.options.pack_tokens=65536", "policy.gradient_checkpointing=false",
            f"output_dir={tmp_path}"]
    started = []
    monkeypatch.setattr("medssr_nemo.grpo.trainer.run_training", lambda cfg: started.append(cfg) or {})
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert medssr(args) == 1
    assert "does NOT fit" in capsys.readouterr().err and not started
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert medssr(args) == 0 and len(started) == 1  # on a CPU nothing is refused


def test_plan_uses_the_started_world_for_data_parallel():
    cfg = shipped("qwen3_8b")
    assert plan(cfg, world_size=16).dp == 8
    assert plan(cfg, world_size=16).optimizer * 2 == plan(cfg).optimizer


def test_launch_plan_prints_every_term(capsys):
    assert medssr(["launch", "--plan", "model=qwen3_14b"]) == 0
    out = capsys.readouterr().out
    for term in ("weights", "gradients", "optimizer state", "reference", "activations", "logits",
                 "engine weights", "KV cache", "phase generation", "phase update", "fits in"):
        assert term in out, term


def test_cluster_doc_table_is_the_script_output():
    doc = (ROOT / "docs" / "cluster.md").read_text()
    table = memory.markdown_table([plan(shipped(s)) for s in SIZES])
    assert table in doc, "docs/cluster.md is stale: rerun python -m medssr_nemo.launch.memory"


def test_the_memory_plan_loads_without_megatron_core_and_pads_the_vocabulary_as_the_backend_does():
    import subprocess
    import sys

    from medssr_nemo.policy.megatron.model import padded_vocab_size

    code = "import sys, medssr_nemo.launch.memory; print(sorted(m for m in sys.modules if m.startswith('megatron')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    assert memory.padded_vocab_size is padded_vocab_size          # one rule, not a copy
    assert padded_vocab_size(151936, 8) == 151552 + 1024 and padded_vocab_size(1024, 8) == 1024
