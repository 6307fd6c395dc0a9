"""The GRPO recipe end to end on a tiny model: reward rises on a learnable task, every metric
the design lists is logged, and a killed run resumes to exactly the weights of an uninterrupted one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from medssr_nemo import registry
from medssr_nemo.config import load_config
from medssr_nemo.grpo.metrics_log import read_metrics
from medssr_nemo.grpo.trainer import GRPOTrainer
from medssr_nemo.models import make_tiny_model, save_tiny_model
from medssr_nemo.records import QuestionRecord, write_records


def shorter_is_better(prompts, completions, **columns):
    """A task a random tiny model can learn fast: among its top-k tokens, prefer short ones."""
    return [max(0.0, 1.0 - len(text) / 40) for text in completions]


RECORDS = [QuestionRecord(id=f"q{i}", question=f"Question number {i}: which one?",
                          options=["alpha", "beta", "gamma", "delta"], gold="ABCD"[i % 4]) for i in range(16)]

TINY_TASK = [
    "model.prompt_style=base", "grpo.group_size=8", "grpo.prompts_per_step=4", "grpo.kl_coef=0.0",
    "rollout.max_new_tokens=6", "rollout.top_k=4", "policy.lr=3e-3", "policy.micro_batch_size=16",
    "train.tensorboard=false", "train.save_hf=false",
    f"reward.sources.gold=[{{name: '{__name__}:shorter_is_better'}}]",
]


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)   # tiny matrices: threads only add overhead (and contend in CI)
    yield
    torch.set_num_threads(threads)


def _trainer(out: Path, steps: int, extra=(), callbacks=(), kl: bool = False) -> GRPOTrainer:
    overrides = [*TINY_TASK, f"output_dir={out}", f"train.steps={steps}", *extra]
    if kl:
        overrides.append("grpo.kl_coef=0.01")
    cfg = load_config("base", overrides)
    model, tokenizer = make_tiny_model("llama", seed=0)
    policy = registry.get("policy_backend", "hf")(cfg, model=model, tokenizer=tokenizer)
    return GRPOTrainer(cfg, records=RECORDS, policy=policy, callbacks=callbacks, show_progress=False).setup()


def test_reward_rises_on_a_learnable_task(tmp_path):
    _trainer(tmp_path, steps=12, extra=["train.save_every=12"]).train()
    rewards = [m["reward/mean"] for m in read_metrics(tmp_path)]
    assert len(rewards) == 12
    first, last = sum(rewards[:3]) / 3, sum(rewards[-3:]) / 3
    assert last > first + 0.15, rewards


def test_every_step_logs_rewards_clipping_kl_entropy_lengths_and_timings(tmp_path):
    _trainer(tmp_path, steps=1, kl=True).train()
    metrics = read_metrics(tmp_path)[0]
    for key in ["reward/mean", "reward/gold/mean", "groups/zero_std_fraction", "train/clip_frac_low",
                "train/clip_frac_high", "train/dual_clip_frac", "train/kl", "train/entropy",
                "response/length_mean", "response/truncation_rate", "train/rollout_logprob_gap_mean",
                "train/grad_norm", "train/lr", "timing/rollout_s", "timing/update_s", "weight_version"]:
        assert key in metrics, key
    # the in-process engine samples from the policy's own float32 weights: logprobs agree
    assert metrics["train/rollout_logprob_gap_max"] < 1e-4
    assert metrics["response/truncation_rate"] == 1.0     # 6 new tokens never reach EOS here
    assert (tmp_path / "config.yaml").exists()


class _Crash(RuntimeError):
    pass


def _crash_after(step_to_crash: int):
    def callback(step, metrics):
        if step == step_to_crash:
            raise _Crash(f"simulated kill after step {step}")
    return callback


def _weights(trainer: GRPOTrainer) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in trainer.policy.export_hf_weights()}


def test_interrupted_run_resumes_to_identical_weights(tmp_path):
    reference = _trainer(tmp_path / "straight", steps=4, extra=["train.save_every=2"], kl=True)
    reference.train()
    expected = _weights(reference)

    crashed = _trainer(tmp_path / "crashed", steps=4, extra=["train.save_every=2"], kl=True,
                       callbacks=[_crash_after(3)])
    with pytest.raises(_Crash):
        crashed.train()          # step 3 ran but its checkpoint did not: resume restarts at 2
    resumed = _trainer(tmp_path / "crashed", steps=4, extra=["train.save_every=2"], kl=True)
    assert resumed.step == 2
    resumed.train()
    for name, tensor in _weights(resumed).items():
        assert torch.equal(tensor, expected[name]), name
    straight = [{k: v for k, v in m.items() if not k.startswith("timing/")} for m in read_metrics(tmp_path / "straight")]
    again = [{k: v for k, v in m.items() if not k.startswith("timing/")} for m in read_metrics(tmp_path / "crashed")]
    assert again == straight      # metrics.jsonl was cut back to step 2, then rewritten (weight versions too)


def test_a_run_killed_before_its_first_checkpoint_starts_over_with_a_clean_log(tmp_path):
    straight = _trainer(tmp_path / "straight", steps=2, extra=["train.save_every=2"])
    straight.train()
    crashed = _trainer(tmp_path / "crashed", steps=2, extra=["train.save_every=2"], callbacks=[_crash_after(1)])
    with pytest.raises(_Crash):
        crashed.train()          # step 1 was logged, no checkpoint exists yet
    again = _trainer(tmp_path / "crashed", steps=2, extra=["train.save_every=2"])
    assert again.step == 0
    again.train()
    drop_timing = lambda rows: [{k: v for k, v in m.items() if not k.startswith("timing/")} for m in rows]  # noqa: E731
    assert drop_timing(read_metrics(tmp_path / "crashed")) == drop_timing(read_metrics(tmp_path / "straight"))


def test_training_without_labels_is_a_clear_error(tmp_path):
    cfg = load_config("base", [*TINY_TASK, f"output_dir={tmp_path}"])
    model, tokenizer = make_tiny_model("llama", seed=0)
    policy = registry.get("policy_backend", "hf")(cfg, model=model, tokenizer=tokenizer)
    unlabelled = [QuestionRecord(id="u", question="?", options=["a", "b"])]
    with pytest.raises(ValueError, match="no training questions left"):
        GRPOTrainer(cfg, records=unlabelled, policy=policy, show_progress=False).setup()


def _cli_train(model_dir: Path, data: Path, out: Path) -> subprocess.Popen:
    overrides = [o for o in TINY_TASK if not o.startswith("reward.")] + [
        "reward.sources.gold=[{name: format}, {name: gold}]", f"model.path={model_dir}",
        f"train.data={data}", f"output_dir={out}", "train.steps=6", "train.save_every=2", "train.save_hf=true"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "medssr_nemo.cli.main", "train", *overrides], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.mark.slow
def test_medssr_train_killed_with_sigkill_resumes_exactly(tmp_path):
    model_dir = save_tiny_model(tmp_path / "tiny", "llama", seed=0)
    data = write_records(RECORDS, tmp_path / "train.jsonl")
    straight = _cli_train(model_dir, data, tmp_path / "straight")
    assert straight.wait(timeout=600) == 0, straight.stdout.read()

    victim = _cli_train(model_dir, data, tmp_path / "killed")
    deadline = time.time() + 600
    while not (tmp_path / "killed/checkpoints/step_000004").exists():
        assert victim.poll() is None and time.time() < deadline, "run ended before the kill"
        time.sleep(0.2)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    rerun = _cli_train(model_dir, data, tmp_path / "killed")
    output = rerun.stdout.read()
    assert rerun.wait(timeout=600) == 0, output
    a = load_file(tmp_path / "straight/hf_model/model.safetensors")
    b = load_file(tmp_path / "killed/hf_model/model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_several_ppo_epochs_use_the_sampling_policy_as_old_policy(tmp_path):
    _trainer(tmp_path, steps=1, extra=["grpo.ppo_epochs=2", "policy.lr=1e-2"]).train()
    metrics = read_metrics(tmp_path)[0]
    assert metrics["mismatch/logprob_abs_max"] < 1e-4       # old logprobs recomputed by the policy
    # the second epoch runs on moved weights: the ratio to the sampling policy is no longer 1
    assert metrics["train/ratio_max"] > 1.0 + 1e-4 or metrics["train/ratio_min"] < 1.0 - 1e-4
