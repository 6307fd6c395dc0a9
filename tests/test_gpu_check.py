"""bench/gpu_check.sh, the one prepared GPU check: its dry run goes through every step on the CPU
(so the script is known to work before GPU time is spent), and its summary reads the figures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

import gpu_summary  # noqa: E402  (bench/ is a folder of scripts, not a package)

STEPS = ["versions", "pytest", "rollout", "profile", "refit", "grpo"]


def run_check(out: Path, *args: str, steps: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHON": sys.executable}
    if steps:
        env["GPU_CHECK_STEPS"] = steps
    return subprocess.run(["bash", str(REPO / "bench" / "gpu_check.sh"), *args, str(out)], env=env,
                          capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("gpu_check")
    result = run_check(out, "--dry-run")
    assert result.returncode == 0, result.stdout + result.stderr
    return out


def test_dry_run_runs_every_step_without_error(dry_run):
    rows = [line.split("\t") for line in (dry_run / "steps.tsv").read_text().splitlines()[1:]]
    assert [row[0] for row in rows] == STEPS
    failed = {row[0]: (dry_run / f"{row[0]}.log").read_text()[-2000:] for row in rows if row[1] != "0"}
    assert not failed, failed


def test_dry_run_records_the_versions_of_this_process(dry_run):
    versions = json.loads((dry_run / "versions.json").read_text())
    assert versions["torch"] == torch.__version__ and versions["device"] == "cpu"
    assert versions["megatron-core"] and versions["transformers"]


def test_dry_run_times_engine_and_both_generate_caches_in_both_modes(dry_run):
    rollout = json.loads((dry_run / "rollout.json").read_text())
    assert rollout["modes"] == ["fixed", "eos"] and rollout["model"] == "random:qwen3-tiny"
    for mode in ("fixed", "eos"):
        result = rollout["results"][mode]
        assert set(result["tokens_per_s"]) >= {"engine", "generate_dynamic", "generate_static"}
        assert all(rate > 0 for rate in result["tokens_per_s"].values())
        best = result["best_generate"]
        assert result["speedup"] == pytest.approx(result["tokens_per_s"]["engine"] / result["tokens_per_s"][best])
    # fixed length: every row produced exactly --new-tokens (4 rows x 8)
    assert set(rollout["results"]["fixed"]["tokens_produced"].values()) == {4 * 8}
    # the warm-up happened once, in the first mode (the second reuses the compiled shapes)
    assert rollout["results"]["eos"]["warmup_s"] == {}


def test_dry_run_refit_leaves_the_engine_on_the_backend_weights(dry_run):
    refit = json.loads((dry_run / "refit.json").read_text())
    assert refit["weights_match_backend"] is True
    assert refit["next_generation_version"] == refit["expected_version"] >= 1


def test_dry_run_measures_a_grpo_step_of_both_backends(dry_run):
    grpo = json.loads((dry_run / "grpo.json").read_text())
    names = [name for name, _ in gpu_summary.throughput_rows(grpo["results"])]
    assert set(names) == {"megatron", "megatron_packed", "hf"}  # packing off and on, and the hf backend
    summary = (dry_run / "summary.md").read_text()
    assert "| megatron" in summary and "| hf" in summary and "generate_static" in summary


def test_a_subset_of_steps_runs_only_those(tmp_path):
    result = run_check(tmp_path, "--dry-run", steps="versions")
    assert result.returncode == 0, result.stderr
    rows = (tmp_path / "steps.tsv").read_text().splitlines()[1:]
    assert [row.split("\t")[0] for row in rows] == ["versions"]


def test_last_json_object_skips_log_lines_and_reads_indented_output():
    one_line = 'Loading weights: 100%\n{"warning": "not this"} trailing\n{"a": 1}\n'
    assert gpu_summary.last_json_object(one_line) == {"a": 1}
    indented = 'megatron: init\n' + json.dumps({"results": {"hf": {"tokens_per_s": 5.0}}}, indent=2)
    assert gpu_summary.last_json_object(indented) == {"results": {"hf": {"tokens_per_s": 5.0}}}
    assert gpu_summary.last_json_object("no json here\n") is None


def test_megatron_mfu_goal_takes_the_best_megatron_variant(tmp_path):
    """With packing on and off reported as nested variants, the goal reads the better megatron
    row, never the hf backend's."""
    grpo = {"shape": "qwen3-1.7b", "batch": 8, "seq_len": 1024, "measured_bf16_matmul_tflops": 790.0,
            "results": {"megatron": {"packing_on": {"tokens_per_s": 1.0, "seconds_per_step": 1.0, "mfu_vs_measured_peak": 0.47},
                                     "packing_off": {"tokens_per_s": 1.0, "seconds_per_step": 1.0, "mfu_vs_measured_peak": 0.40}},
                        "hf": {"tokens_per_s": 1.0, "seconds_per_step": 1.0, "mfu_vs_measured_peak": 0.60}}}
    (tmp_path / "grpo.json").write_text(json.dumps(grpo))
    summary = gpu_summary.summarise(tmp_path)
    assert summary["goals"]["megatron_mfu"] == {"value": 0.47, "goal": 0.45, "met": True}
    assert "| megatron / packing_off |" in gpu_summary.markdown(summary)
