"""The megatron policy backend under real torch.distributed (gloo, 1 and 2 processes on CPU).

Two torchrun jobs (``tests/megatron_jobs/run.py``) measure everything once per module; each test
judges one behaviour from their results:

* parity with transformers: logits and logprobs of tiny Llama / Qwen2 / Qwen3 checkpoints (tied
  and untied embeddings, padded vocabulary) at TP1, TP2 and PP2; the HF export equals the
  imported checkpoint bit for bit;
* GRPO: one step gives the same loss and gradient norm at TP1, TP2, PP2 and DP2 and as the
  ``hf`` backend (an independent implementation); three steps follow the same trajectory;
* checkpoints: saved at TP2, resumed at TP2 (exactly), TP1 and PP2.

``pytest -k "megatron and parity"`` selects the parity tests.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("megatron.core", reason="needs megatron-core (pip install -e .[megatron])")

pytestmark = pytest.mark.distributed

JOB = Path(__file__).parent / "megatron_jobs" / "run.py"
MODELS = ("llama", "qwen3", "qwen2", "llama_untied")
PADDED_VOCAB_MULTIPLE = 100  # 49,152 is a multiple of 128 * 2: force 48 padded rows
LOSS_RTOL, GRAD_NORM_RTOL, WEIGHT_ATOL = 1e-5, 1e-5, 1e-4
# The hf backend sums float32 per-tensor norms (torch.linalg.vector_norm), which on a CPU drift by
# up to ~1e-4 for multi-million-element tensors such as the embedding; the megatron backend
# accumulates in float64. Their gradients are compared exactly enough through loss and weights.
HF_GRAD_NORM_RTOL = 1e-3
PACK_TOKENS = 20  # rows of 7, 12, 5, 10, 9, 6 tokens -> bins [12, 7], [10, 9], [6, 5]
EMBEDDING_SCALE = 5.0  # random init gives near-uniform next-token distributions; make them peaked


def _perturb_vectors(model, seed: int) -> None:
    """Norm weights start at 1 and biases at 0: make them distinct so that a swapped or
    misplaced norm/bias in the mapping changes the logits."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            if param.dim() == 1:
                param.add_(0.2 * torch.randn(param.shape, generator=gen))


def _scale_embeddings(model) -> None:
    with torch.no_grad():
        model.get_input_embeddings().weight.mul_(EMBEDDING_SCALE)


def _save_tiny_checkpoints(root: Path) -> dict[str, str]:
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    from medssr_nemo.models import make_tiny_model

    paths = {}
    tokenizer = None
    for seed, arch in enumerate(("llama", "qwen3")):
        model, tokenizer = make_tiny_model(arch, seed)
        _perturb_vectors(model, seed)
        _scale_embeddings(model)
        model.save_pretrained(root / arch)
        tokenizer.save_pretrained(root / arch)
        paths[arch] = str(root / arch)
    common = dict(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                  bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                  pad_token_id=tokenizer.pad_token_id)
    variants = {"qwen2": (Qwen2Config, Qwen2ForCausalLM, True),          # q/k/v biases
                "llama_untied": (LlamaConfig, LlamaForCausalLM, False)}  # separate lm_head
    for seed, (name, (config_cls, model_cls, tied)) in enumerate(variants.items(), start=2):
        torch.manual_seed(seed)
        model = model_cls(config_cls(**common, tie_word_embeddings=tied)).eval()
        _perturb_vectors(model, seed)
        _scale_embeddings(model)
        model.save_pretrained(root / name)
        tokenizer.save_pretrained(root / name)
        paths[name] = str(root / name)
    return paths


def _run_job(spec: dict, nproc: int, out_dir: Path, timeout_s: int = 600) -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    spec = {**spec, "out_dir": str(out_dir)}
    spec_file, result_file = out_dir / "spec.json", out_dir / "result.json"
    spec_file.write_text(json.dumps(spec))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
         str(JOB), str(spec_file), str(result_file)],
        env=env, capture_output=True, text=True, timeout=timeout_s)
    if proc.returncode != 0 or not result_file.exists():
        raise AssertionError(f"megatron job ({nproc} processes) failed with exit code {proc.returncode}:\n"
                             f"{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}")
    return json.loads(result_file.read_text())


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, str]:
    return _save_tiny_checkpoints(tmp_path_factory.mktemp("tiny_hf"))


@pytest.fixture(scope="module")
def one_process(checkpoints, tmp_path_factory) -> dict:
    """TP1 (a world of one): parity for every model, GRPO steps, and the hf backend's steps."""
    cases = [{"model": m, "tp": 1, "pp": 1} for m in MODELS]
    cases.append({"model": "qwen3", "tp": 1, "pp": 1, "vocab_multiple": PADDED_VOCAB_MULTIPLE})
    spec = {"models": checkpoints, "parity": {"cases": cases},
            "grpo": {"model": "qwen3", "steps": 3, "hf_backend": True,
                     "layouts": [{"name": "tp1", "tp": 1, "pp": 1},
                                 {"name": "tp1_entropy_only", "tp": 1, "pp": 1, "entropy_only": True},
                                 {"name": "tp1_packed", "tp": 1, "pp": 1, "pack_tokens": PACK_TOKENS}]},
            "offload": {"model": "llama"}}
    return _run_job(spec, 1, tmp_path_factory.mktemp("megatron_world1"))


@pytest.fixture(scope="module")
def two_processes(checkpoints, tmp_path_factory) -> dict:
    """World of two: TP2, PP2 (and DP2 for GRPO), plus the checkpoint save/resume scenario."""
    cases = [{"model": m, "tp": tp, "pp": pp} for m in MODELS for tp, pp in ((2, 1), (1, 2))]
    cases.append({"model": "qwen3", "tp": 2, "pp": 1, "vocab_multiple": PADDED_VOCAB_MULTIPLE})
    layouts = [{"name": "tp2", "tp": 2, "pp": 1}, {"name": "pp2", "tp": 1, "pp": 2}, {"name": "dp2", "tp": 1, "pp": 1},
               {"name": "tp2_entropy_only", "tp": 2, "pp": 1, "entropy_only": True},
               {"name": "pp2_recompute", "tp": 1, "pp": 2, "recompute": True},
               {"name": "tp2_packed", "tp": 2, "pp": 1, "pack_tokens": PACK_TOKENS},
               {"name": "pp2_packed", "tp": 1, "pp": 2, "pack_tokens": PACK_TOKENS}]
    spec = {"models": checkpoints, "parity": {"cases": cases},
            "grpo": {"model": "qwen3", "steps": 3, "layouts": layouts},
            "checkpoint": {"model": "llama", "save_layout": {"tp": 2, "pp": 1},
                           "resume_layouts": [{"name": "tp2", "tp": 2, "pp": 1}, {"name": "tp1", "tp": 1, "pp": 1},
                                              {"name": "pp2", "tp": 1, "pp": 2}]}}
    return _run_job(spec, 2, tmp_path_factory.mktemp("megatron_world2"))


def _parity_cases(one_process, two_processes) -> list[dict]:
    return one_process["parity"] + two_processes["parity"]


def _label(case: dict) -> str:
    extra = f" vocab_multiple={case['vocab_multiple']}" if "vocab_multiple" in case else ""
    return f"{case['model']} TP{case['tp']} PP{case['pp']}{extra}"


def _grpo_runs(one_process, two_processes) -> dict[str, dict]:
    return {run["name"]: run for run in one_process["grpo"] + two_processes["grpo"]}


def _grad_norm_rtol(layout: str) -> float:
    return HF_GRAD_NORM_RTOL if layout.startswith("hf_backend") else GRAD_NORM_RTOL


@pytest.mark.parametrize("layout", ["TP1", "TP2", "PP2"])
def test_megatron_parity_logits_match_transformers(one_process, two_processes, layout):
    tp, pp = {"TP1": (1, 1), "TP2": (2, 1), "PP2": (1, 2)}[layout]
    cases = [c for c in _parity_cases(one_process, two_processes) if (c["tp"], c["pp"]) == (tp, pp)]
    assert {c["model"] for c in cases} == set(MODELS)
    for case in cases:
        assert case["logits_shape"][-1] == case["vocab_size"] == 49152, _label(case)
        assert case["logits_max_abs_diff"] < 1e-5 * max(1.0, case["logits_scale"]), _label(case)
        assert case["logprobs_max_abs_diff"] < 1e-5, _label(case)
        assert case["logprobs_t07_max_abs_diff"] < 1e-5, _label(case)  # logits / temperature


def test_megatron_parity_padded_vocabulary(one_process, two_processes):
    """A vocabulary padded for TP holds extra rows; they never receive probability and are not
    exported."""
    padded = [c for c in _parity_cases(one_process, two_processes) if "vocab_multiple" in c]
    assert {(c["tp"], c["pp"]) for c in padded} == {(1, 1), (2, 1)}
    for case in padded:
        assert case["padded_vocab_size"] == 49200 > case["vocab_size"], _label(case)
        assert case["logits_shape"][-1] == case["vocab_size"], _label(case)
        assert case["logits_max_abs_diff"] < 1e-5 * max(1.0, case["logits_scale"]), _label(case)
        assert case["logprobs_max_abs_diff"] < 1e-5, _label(case)


def test_memory_plan_counts_the_largest_megatron_shard(one_process, two_processes, checkpoints):
    """The memory plan's parameters per GPU (launch/memory.py) equal the largest shard of the
    megatron model actually built, at TP1, TP2 and PP2, tied and untied."""
    from medssr_nemo.launch.memory import architecture_of, parameters_per_gpu

    for case in _parity_cases(one_process, two_processes):
        if "vocab_multiple" in case or case["model"] == "qwen2":  # the plan assumes 128 and no q/k/v bias
            continue
        arch = architecture_of(checkpoints[case["model"]])
        assert parameters_per_gpu(arch, case["tp"], case["pp"]) == max(case["local_parameters"]), _label(case)


def test_megatron_parity_hf_export_round_trip_is_bit_exact(one_process, two_processes):
    for case in _parity_cases(one_process, two_processes):
        assert case["export_names_equal"], _label(case)
        assert case["export_mismatched"] == [], _label(case)


@pytest.mark.parametrize("layout", ["tp2", "pp2", "dp2", "hf_backend", "pp2_recompute", "tp1_packed", "tp2_packed",
                                    "pp2_packed"])
def test_megatron_parity_one_grpo_step_same_loss_and_grad_norm(one_process, two_processes, layout):
    runs = _grpo_runs(one_process, two_processes)
    reference, other = runs["tp1"]["steps"][0], runs[layout]["steps"][0]
    assert reference["num_tokens"] == other["num_tokens"] > 0
    assert other["loss"] == pytest.approx(reference["loss"], rel=LOSS_RTOL)
    assert other["grad_norm"] == pytest.approx(reference["grad_norm"], rel=_grad_norm_rtol(layout))
    assert reference["grad_norm"] > 1e-2  # a real gradient, not a vacuous comparison


@pytest.mark.parametrize("layout", ["tp2", "pp2", "dp2", "hf_backend", "tp1_packed", "tp2_packed", "pp2_packed"])
def test_megatron_parity_three_steps_same_trajectory(one_process, two_processes, layout):
    runs = _grpo_runs(one_process, two_processes)
    reference, other = runs["tp1"], runs[layout]
    assert len(reference["steps"]) == len(other["steps"]) == 3
    for step, (a, b) in enumerate(zip(reference["steps"], other["steps"])):
        assert b["loss"] == pytest.approx(a["loss"], rel=LOSS_RTOL, abs=1e-7), f"step {step}"
        assert b["grad_norm"] == pytest.approx(a["grad_norm"], rel=_grad_norm_rtol(layout)), f"step {step}"
        for key in ("kl", "entropy", "clip_frac_high", "clip_frac_low", "ratio_mean"):
            assert b[key] == pytest.approx(a[key], rel=1e-4, abs=1e-6), f"step {step} {key}"
    losses = [s["loss"] for s in reference["steps"]]
    assert len(set(losses)) == 3  # the policy moved between steps
    final_a = torch.load(reference["weights_file"])
    final_b = torch.load(other["weights_file"])
    assert set(final_a) == set(final_b)
    for name in final_a:
        torch.testing.assert_close(final_b[name], final_a[name], atol=WEIGHT_ATOL, rtol=0, msg=name)


@pytest.mark.parametrize("layout", ["tp2_entropy_only", "hf_backend_entropy_only"])
def test_megatron_parity_entropy_gradient(one_process, two_processes, layout):
    """Training on the entropy bonus alone: the vocabulary-parallel entropy and its gradient
    match TP1 and the hf backend's full-vocabulary softmax."""
    runs = _grpo_runs(one_process, two_processes)
    reference, other = runs["tp1_entropy_only"]["steps"], runs[layout]["steps"]
    assert reference[0]["loss"] == pytest.approx(-reference[0]["entropy"], rel=1e-6)
    assert 0.5 < reference[0]["entropy"] < 10.5  # peaked enough for a real gradient
    assert reference[0]["grad_norm"] > 1e-2
    for step, (a, b) in enumerate(zip(reference, other, strict=True)):
        assert b["loss"] == pytest.approx(a["loss"], rel=LOSS_RTOL), f"step {step}"
        assert b["grad_norm"] == pytest.approx(a["grad_norm"], rel=_grad_norm_rtol(layout)), f"step {step}"


def test_megatron_grpo_steps_report_learning_rate_and_counts(one_process):
    step = one_process["grpo"][0]["steps"][0]
    assert step["lr"] == pytest.approx(1e-3)
    assert step["update_skipped"] == 0.0
    assert step["num_seqs"] == 6 and step["num_tokens"] == sum([4, 8, 3, 5, 6, 4])


@pytest.mark.parametrize("layout", ["tp1", "tp2", "pp2", "dp2", "tp1_packed", "tp2_packed", "pp2_packed"])
def test_megatron_reference_policy_stays_the_initial_policy(one_process, two_processes, layout):
    run = _grpo_runs(one_process, two_processes)[layout]
    assert run["initial_logprob_diff"] < 1e-5
    assert run["reference_after_training_diff"] < 1e-5


@pytest.mark.parametrize("layout", ["tp1_packed", "tp2_packed", "pp2_packed"])
def test_megatron_packed_sequences_give_the_padded_logprobs(one_process, two_processes, layout):
    """Packed micro-batches (block-diagonal causal mask) give transformers' padded logprobs, and
    they really were packed: a few bins of several rows, none over the budget."""
    run = _grpo_runs(one_process, two_processes)[layout]
    assert run["initial_logprob_diff"] < 1e-5
    tokens = run["micro_batch_tokens"]
    assert max(tokens) <= PACK_TOKENS
    assert len(tokens) == 3 and sum(tokens) == sum([7, 12, 5, 10, 9, 6])


def test_megatron_gpu_memory_is_freed_between_phases(one_process):
    """With CUDA simulated: the optimizer state and gradient buffer are on the GPU only inside the
    update; the reference visits for its pass; the rollout copy leaves for the logprob passes and
    the update and is back for the refit (policy/megatron/offload.py; the memory plan counts on it)."""
    assert one_process["offload"]["events"] == [
        "optimizer off", "grads off", "park reference", "-- built",
        "-- reference pass", "park rollout copy", "unpark reference", "park reference",
        "-- update", "park rollout copy", "optimizer on", "grads on", "optimizer off", "grads off",
        "-- refit", "unpark rollout copy"]


def test_megatron_training_state_reports_the_bytes_it_holds(one_process):
    """The colocated ledger's numbers for the megatron backend: a float32 gradient buffer of at least
    4 bytes per trained parameter (buckets may pad), Adam's two float32 moments (8 bytes per
    parameter) while resident, and a gradient buffer of 0 bytes after megatron-core frees it."""
    run = one_process["offload"]
    params = run["trained_params"]
    assert 4 * params <= run["held_resident"]["grads"] < 4 * params * 1.1
    assert run["held_resident"]["optimizer"] == 8 * params
    assert run["held_after_grads_off"] == {"grads": 0, "optimizer": 8 * params}


def test_megatron_checkpoint_written_with_dist_checkpointing(two_processes):
    files = two_processes["checkpoint"]["checkpoint_files"]
    assert "metadata.json" in files and "common.pt" in files
    assert any(f.endswith(".distcp") for f in files)


def test_megatron_checkpoint_resumes_exactly_in_the_same_layout(two_processes):
    """Weights, Adam moments and step count come back exactly: the next two steps (losses,
    gradient norms, resulting weights) are bit-identical to the uninterrupted run's."""
    result = two_processes["checkpoint"]
    resumed = {r["name"]: r for r in result["resumed"]}["tp2"]
    assert resumed["step_after_load"] == 1
    for mine, theirs in zip(resumed["later"], result["later"], strict=True):
        assert mine["loss"] == theirs["loss"]
        assert mine["grad_norm"] == theirs["grad_norm"]
    assert resumed["weights_bit_equal"]


def test_megatron_save_hf_writes_a_checkpoint_transformers_loads(two_processes):
    saved = two_processes["checkpoint"]["save_hf"]
    assert {"config.json", "generation_config.json", "model.safetensors", "tokenizer.json"} <= set(saved["files"])
    assert not any(name.startswith(".") for name in saved["files"])
    assert saved["logits_max_abs_diff"] < 1e-4


@pytest.mark.parametrize("layout", ["tp1", "pp2"])
def test_megatron_checkpoint_saved_at_tp2_resumes_in_another_layout(two_processes, layout):
    result = two_processes["checkpoint"]
    resumed = {r["name"]: r for r in result["resumed"]}[layout]
    assert resumed["step_after_load"] == 1
    for mine, theirs in zip(resumed["later"], result["later"], strict=True):
        assert mine["loss"] == pytest.approx(theirs["loss"], rel=LOSS_RTOL)
        assert mine["grad_norm"] == pytest.approx(theirs["grad_norm"], rel=GRAD_NORM_RTOL)
    assert resumed["weights_max_abs_diff"] < WEIGHT_ATOL
    # the resumed step is the second one, not a fresh first step
    assert resumed["later"][0]["loss"] != pytest.approx(result["first"]["loss"], rel=1e-3)


# ----------------------------------------------------------------------------- slow: the recipe
@pytest.fixture(scope="module")
def recipe(checkpoints, tmp_path_factory) -> dict:
    """World of two: the GRPO trainer with policy.backend=megatron at TP2 (uninterrupted and
    resumed runs), and the embedded SmolLM2-135M (30 layers, 9 heads) at PP2 against transformers."""
    from medssr_nemo.models import resolve_model_dir

    models = {**checkpoints, "smollm2": resolve_model_dir("embedded:smollm2-135m-instruct")}
    spec = {"models": models, "parity": {"cases": [{"model": "smollm2", "tp": 1, "pp": 2}]},
            "trainer": {"model": "llama", "tp": 2, "pp": 1, "steps": 3}}
    return _run_job(spec, 2, tmp_path_factory.mktemp("megatron_recipe"), timeout_s=900)


@pytest.mark.slow
def test_megatron_parity_embedded_smollm2_pp2(recipe):
    (case,) = recipe["parity"]
    assert case["logits_max_abs_diff"] < 1e-4 * max(1.0, case["logits_scale"])
    assert case["logprobs_max_abs_diff"] < 1e-4
    assert case["export_names_equal"] and case["export_mismatched"] == []


@pytest.mark.slow
def test_megatron_grpo_trainer_runs_refits_and_resumes_exactly(recipe):
    result = recipe["trainer"]
    metrics = result["metrics"]
    assert [m["weight_version"] for m in metrics] == [1, 2, 3]  # the engine was refit every step
    for m in metrics:
        assert m["mismatch/logprob_abs_max"] < 1e-4  # engine (HF copy) and policy (megatron) agree
        assert m["train/grad_norm"] > 0
    assert result["engine_vs_policy_weight_diff"] == 0.0
    assert result["resumed_step"] == 3
    assert result["max_weight_diff_straight_vs_resumed"] == 0.0
