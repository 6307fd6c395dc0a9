"""`medssr run` end to end on a tiny model of a real architecture (random weights, SmolLM2's
tokenizer) with the real data files: every artifact and the manifest, resume after a kill in
stage 1 equals an uninterrupted run, a changed α re-runs synthesis and what follows but not the
real-data preparation, the ablations, the α sweep."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from medssr_nemo.config import load_config
from medssr_nemo.pipeline.runner import run_pipeline
from medssr_nemo.pipeline.steps import STEPS
from medssr_nemo.records import read_records

ALL_STEPS = [s.name for s in STEPS]
STAGE1_KILL_AFTER = 2


def tiny_overrides(model_dir: Path, run_dir: Path, *extra: str) -> list[str]:
    return [
        f"output_dir={run_dir}", f"model.path={model_dir}", "model.name=tiny-llama",
        "data.pools=[medmcqa,mmlu]", "data.max_per_pool=150",
        "synthesis.num_questions=10", "synthesis.alpha=0.5", "synthesis.show_progress=false",
        "label.num_samples=3", "label.max_new_tokens=6",
        "rollout.max_new_tokens=6", "rollout.batch_size=12",
        "grpo.prompts_per_step=2", "grpo.group_size=3", "policy.lr=1e-3", "policy.micro_batch_size=3",
        "pipeline.stage1.steps=4", "pipeline.stage2.steps=2", "train.save_every=1", "train.tensorboard=false",
        "eval.benchmarks=[medqa,rarebench]", "eval.limit=2", "eval.num_samples=1", "eval.max_new_tokens=6",
        *extra,
    ]


def shorter_is_better(prompts, completions, **columns):
    return [max(0.0, 1.0 - len(text) / 40) for text in completions]


class Killed(BaseException):
    """Stands for a kill: not an Exception, so no handler in the pipeline treats it as a failure."""


def _kill_after(step: int):
    def callback(done: int, _metrics: dict) -> None:
        if done == step:
            raise Killed()
    return callback


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    from medssr_nemo.models import save_tiny_model

    torch.set_num_threads(1)
    return save_tiny_model(tmp_path_factory.mktemp("model") / "tiny", "llama", seed=0)


@pytest.fixture(scope="module")
def finished_run(tiny_model, tmp_path_factory):
    """One uninterrupted pipeline: (config overrides, run dir, result, printed lines)."""
    run_dir = tmp_path_factory.mktemp("pipeline") / "run"
    lines: list[str] = []
    overrides = tiny_overrides(tiny_model, run_dir)
    result = run_pipeline(load_config("base", overrides), progress=False, echo=lines.append)
    return overrides, run_dir, result, lines


def _metrics_without_timing(path: Path) -> list[dict]:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return [{k: v for k, v in row.items() if not k.startswith("timing/")} for row in rows]


def _weights(model_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(model_dir / "model.safetensors"))


def test_every_step_runs_and_leaves_its_artifacts(finished_run):
    _, run_dir, result, lines = finished_run
    assert result.actions == {name: "ran" for name in ALL_STEPS}
    assert [line.split("]")[0] + "]" for line in lines] == [f"[{i}/9]" for i in range(1, 10)]
    real = read_records(run_dir / "real_data" / "real.jsonl")
    assert real and {r.source for r in real} == {"medmcqa", "mmlu"} and all(r.label_source == "gold" for r in real)
    synthetic = read_records(run_dir / "synthesis" / "synthetic.jsonl")
    assert len(synthetic) == 10
    real_ids = {r.id for r in real}
    # non-rare synthetic questions are seeds from the stage-1 reserve, never stage 2's questions
    seeds = [r for r in synthetic if r.meta.get("origin") == "seed"]
    reserve_ids = {r.id for r in read_records(run_dir / "real_data" / "real.stage1_seeds.jsonl")}
    assert seeds and all(r.meta["seed_id"] in reserve_ids and r.meta["seed_id"] not in real_ids for r in seeds)
    labelled = read_records(run_dir / "pseudo_labels" / "pseudo_labels.jsonl")
    assert labelled and all(r.label_source == "pseudo" and r.label in r.letters for r in labelled)
    votes = [json.loads(line) for line in (run_dir / "pseudo_labels" / "pseudo_labels.votes.jsonl").read_text().splitlines()]
    assert len(votes) == 10 and sum(v["kept"] for v in votes) == len(labelled)
    for stage, steps in (("stage1", 4), ("stage2", 2)):
        assert len(_metrics_without_timing(run_dir / stage / "metrics.jsonl")) == steps
        assert (run_dir / stage / "hf_model" / "model.safetensors").exists()
    assert read_records(run_dir / "stage1" / "train.jsonl") == labelled
    # the collapse monitor runs on stage 1's knowledge-keyed questions, and only there
    # (tiny_overrides' alpha and seeds put a knowledge-keyed question among the labelled ones and into a
    # stage-1 batch; if a change of settings loses it, this fails instead of checking nothing)
    knowledge_keyed = [r for r in labelled if r.meta.get("origin") == "knowledge" and r.gold is not None]
    assert knowledge_keyed, "the tiny run must train stage 1 on at least one knowledge-keyed question"
    stage1_rows = _metrics_without_timing(run_dir / "stage1" / "metrics.jsonl")
    monitored = [row for row in stage1_rows if "collapse/reward_agreement" in row]
    assert monitored and all(0.0 <= row["collapse/reward_agreement"] <= 1.0 for row in monitored)
    assert not any("collapse/reward_agreement" in row for row in _metrics_without_timing(run_dir / "stage2" / "metrics.jsonl"))
    # stage 2 starts from stage 1's weights, on the real questions
    stage2_cfg = (run_dir / "stage2" / "config.yaml").read_text()
    assert f"path: {run_dir / 'stage1' / 'hf_model'}" in stage2_cfg
    assert len(read_records(run_dir / "stage2" / "train.jsonl")) == len(real)
    for label in ("base", "stage1", "stage2"):
        summary = json.loads((run_dir / f"eval_{label}" / "summary.json").read_text())
        assert [c["label"] for c in summary["checkpoints"]] == [label]
        assert set(summary["checkpoints"][0]["benchmarks"]) == {"medqa", "rarebench"}
    report = run_dir / "report"
    text = (report / "report.md").read_text()
    for heading in ("## Setting", "**Scale.**", "## 1. Real data", "## 2. Synthetic questions", "## 3. Pseudo-labels",
                    "## 4-5. GRPO stages", "## 6. Evaluation", "rarebench (rare)", "tiny-llama"):
        assert heading in text, heading
    assert "**Collapse monitor** (questions with a knowledge-base key)" in text   # pipeline/report.py
    assert f"| stage1 | {len(monitored)} |" in text
    # every accuracy with its interval, and the stages tested against each other on the same questions
    assert "[95% interval over questions]" in text and "none (too few questions)" in text
    for pair in ("### base → stage1", "### stage1 → stage2", "### base → stage2"):
        assert pair in text, pair
    for png in ("training_curves.png", "agreement_histogram.png", "pseudo_label_accuracy.png", "synthesis_mix.png",
                "accuracy_per_benchmark.png"):
        data = (report / png).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000, png
        assert f"]({png})" in text


def test_report_numbers_are_the_artifacts_numbers(finished_run):
    from statsmodels.stats.proportion import proportion_confint

    _, run_dir, _, _ = finished_run
    summary = json.loads((run_dir / "report" / "summary.json").read_text())
    # pseudo-label accuracy worked out from the vote log and the synthetic questions' keys
    votes = [json.loads(line) for line in (run_dir / "pseudo_labels" / "pseudo_labels.votes.jsonl").read_text().splitlines()]
    kept = [v for v in votes if v["kept"]]
    correct = sum(v["label"] == v["gold"] for v in kept)
    assert summary["pseudo_labels"]["accuracy_vs_key"]["all kept"] == {
        "with_gold": len(kept), "correct": correct, "accuracy": correct / len(kept),
        "ci95": [pytest.approx(x) for x in proportion_confint(correct, len(kept), method="wilson")]}
    hist = summary["pseudo_labels"]["agreement_histogram"]
    assert sum(v["kept"] + v["dropped"] for v in hist.values()) == len(votes)
    # achieved rare share = rare questions written / questions written
    synthetic = read_records(run_dir / "synthesis" / "synthetic.jsonl")
    assert summary["synthesis"]["mix"]["rare-disease share"]["rare"]["achieved"] == pytest.approx(
        sum(r.rare for r in synthetic) / len(synthetic), abs=1e-6)
    # training curves are the metrics logs; evaluation rows are the per-checkpoint summaries
    for stage in ("stage1", "stage2"):
        rows = _metrics_without_timing(run_dir / stage / "metrics.jsonl")
        assert summary["training"][stage]["curves"]["reward/mean"] == [r["reward/mean"] for r in rows]
    for ckpt in summary["evaluation"]["checkpoints"]:
        own = json.loads((run_dir / f"eval_{ckpt['label']}" / "summary.json").read_text())["checkpoints"][0]
        assert ckpt["macro_accuracy_pct"] == own["macro_accuracy_pct"]
        per_question = [json.loads(line) for line in
                        (run_dir / f"eval_{ckpt['label']}" / ckpt["label"] / "medqa" / "generations.jsonl").read_text().splitlines()]
        assert ckpt["benchmarks"]["medqa"]["accuracy_pct_mean"] == pytest.approx(
            100.0 * sum(r["correct"] for r in per_question) / len(per_question))
    # the paired test's discordant counts are the two checkpoints' per-question results
    first = summary["comparisons"][0]
    assert (first["a"]["label"], first["b"]["label"]) == ("base", "stage1")
    rows = {label: {r["id"]: r["correct"] for r in map(json.loads, (
        run_dir / f"eval_{label}" / label / "medqa" / "generations.jsonl").read_text().splitlines())}
        for label in ("base", "stage1")}
    assert first["benchmarks"]["medqa"]["only_b"] == sum(rows["stage1"][q] and not rows["base"][q] for q in rows["base"])


def test_manifest_records_config_inputs_versions_and_timings(finished_run):
    _, run_dir, _, _ = finished_run
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["config"]["synthesis"]["alpha"] == 0.5 and manifest["config"]["pipeline"]["stage1"]["steps"] == 4
    assert {"python", "torch", "transformers", "medssr_nemo"} <= set(manifest["versions"])
    for name in ALL_STEPS:
        entry = manifest["steps"][name]
        assert entry["status"] == "done", name
        assert len(entry["fingerprint"]) == 64 and entry["seconds"] >= 0
        assert entry["started_at"] <= entry["finished_at"]
        assert entry["outputs"] and all(len(v) == 64 for v in entry["outputs"].values()), name
        stamp = json.loads((run_dir / name / "_step.json").read_text())
        assert stamp["fingerprint"] == entry["fingerprint"] and stamp["status"] == "done"
    data_inputs = manifest["steps"]["real_data"]["inputs"]
    assert any(k.endswith("train/medmcqa/dev.json") for k in data_inputs)
    assert any("eval/medssr/test_short_medqa.json" in k for k in data_inputs)
    assert set(manifest["steps"]["pseudo_labels"]["inputs"]) == {"synthesis/synthetic.jsonl"}
    assert manifest["steps"]["stage2"]["upstream"].keys() == {"real_data", "stage1"}
    assert manifest["steps"]["synthesis"]["settings"]["synthesis"]["alpha"] == 0.5


def test_rerun_skips_every_finished_step(finished_run, tiny_model):
    overrides, run_dir, _, _ = finished_run
    before = {p: p.stat().st_mtime_ns for p in run_dir.rglob("*") if p.is_file() and p.name != "manifest.json"}
    lines: list[str] = []
    result = run_pipeline(load_config("base", overrides), progress=False, echo=lines.append)
    assert result.actions == {name: "skipped" for name in ALL_STEPS}
    assert all("done earlier, skipped" in line for line in lines)
    after = {p: p.stat().st_mtime_ns for p in run_dir.rglob("*") if p.is_file() and p.name != "manifest.json"}
    assert after == before


def test_kill_during_stage1_then_rerun_equals_an_uninterrupted_run(finished_run, tiny_model, tmp_path):
    _, reference_dir, _, _ = finished_run
    run_dir = tmp_path / "run"
    cfg = load_config("base", tiny_overrides(tiny_model, run_dir))
    with pytest.raises(Killed):
        run_pipeline(cfg, progress=False, echo=lambda _: None,
                     train_callbacks={"stage1": [_kill_after(STAGE1_KILL_AFTER)]})
    stamp = json.loads((run_dir / "stage1" / "_step.json").read_text())
    assert stamp["status"] == "running"
    assert not (run_dir / "stage2").exists()
    lines: list[str] = []
    result = run_pipeline(cfg, progress=False, echo=lines.append)
    assert [result.actions[n] for n in ALL_STEPS] == ["skipped"] * 3 + ["resumed"] + ["ran"] * 5
    assert any("stage 1" in line and "resuming" in line for line in lines)
    assert _metrics_without_timing(run_dir / "stage1" / "metrics.jsonl") == \
        _metrics_without_timing(reference_dir / "stage1" / "metrics.jsonl")
    for stage in ("stage1", "stage2"):
        mine, reference = _weights(run_dir / stage / "hf_model"), _weights(reference_dir / stage / "hf_model")
        assert mine.keys() == reference.keys()
        assert all(torch.equal(mine[k], reference[k]) for k in mine), stage
    for label in ("base", "stage1", "stage2"):
        mine = json.loads((run_dir / f"eval_{label}" / "summary.json").read_text())["checkpoints"][0]["benchmarks"]
        reference = json.loads((reference_dir / f"eval_{label}" / "summary.json").read_text())["checkpoints"][0]["benchmarks"]
        assert mine == reference


def test_changed_alpha_reruns_synthesis_and_after_but_not_real_data(finished_run, tiny_model, tmp_path):
    overrides, reference_dir, _, _ = finished_run
    run_dir = tmp_path / "run"
    shutil.copytree(reference_dir, run_dir)
    real_before = (run_dir / "real_data" / "real.jsonl").stat().st_mtime_ns
    base_eval_before = (run_dir / "eval_base" / "summary.json").stat().st_mtime_ns
    lines: list[str] = []
    result = run_pipeline(load_config("base", tiny_overrides(tiny_model, run_dir, "synthesis.alpha=1.0")),
                          progress=False, echo=lines.append)
    assert result.actions == {"real_data": "skipped", "synthesis": "reran", "pseudo_labels": "reran", "stage1": "reran",
                              "stage2": "reran", "eval_base": "skipped", "eval_stage1": "reran", "eval_stage2": "reran",
                              "report": "reran"}
    said = "\n".join(lines)
    assert "synthesis.alpha: 0.5 -> 1.0" in said and "re-running it and what depends on it" in said
    assert (run_dir / "real_data" / "real.jsonl").stat().st_mtime_ns == real_before
    assert (run_dir / "eval_base" / "summary.json").stat().st_mtime_ns == base_eval_before
    synthetic = read_records(run_dir / "synthesis" / "synthetic.jsonl")
    assert all(r.rare for r in synthetic)            # alpha = 1: every question injects rare-disease knowledge
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["steps"]["synthesis"]["action"] == "rerun"
    assert "synthesis.alpha: 0.5 -> 1.0" in manifest["steps"]["synthesis"]["reason"]


def test_skipping_stage1_is_plain_grpo_on_real_data_from_the_base_model(tiny_model, tmp_path):
    run_dir = tmp_path / "run"
    cfg = load_config("base", tiny_overrides(tiny_model, run_dir, "pipeline.stage1.enabled=false"))
    result = run_pipeline(cfg, progress=False, echo=lambda _: None)
    assert [n for n, a in result.actions.items() if a == "disabled"] == ["synthesis", "pseudo_labels", "stage1", "eval_stage1"]
    assert f"path: {tiny_model}" in (run_dir / "stage2" / "config.yaml").read_text()
    summary = json.loads((run_dir / "report" / "summary.json").read_text())
    assert [c["label"] for c in summary["evaluation"]["checkpoints"]] == ["base", "stage2"]
    assert "synthesis" not in summary and "## 2. Synthetic questions" not in (run_dir / "report" / "report.md").read_text()
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["steps"]["stage1"] == {"status": "disabled", "reason": "pipeline.stage1.enabled=false"}


def test_alpha_sweep_runs_one_pipeline_per_value_and_shares_what_alpha_does_not_change(tiny_model, tmp_path):
    from medssr_nemo.pipeline.sweep import run_sweep

    root = tmp_path / "sweep"
    cfg = load_config("base", tiny_overrides(tiny_model, root, "pipeline.alpha_sweep=[0.0,1.0]",
                                             "pipeline.stage2.enabled=false", "pipeline.stage1.steps=1"))
    results, comparison = run_sweep(cfg, progress=False, echo=lambda _: None)
    assert [r.run_dir for r in results] == [root / "alpha_0", root / "alpha_1"]
    assert results[0].actions["eval_base"] == "ran" and results[1].actions["eval_base"] == "skipped"
    assert results[1].actions["real_data"] == "skipped"
    assert (root / "real_data" / "real.jsonl").exists() and not (root / "alpha_0" / "real_data").exists()
    rare = [sum(r.rare for r in read_records(root / f"alpha_{a}" / "synthesis" / "synthetic.jsonl")) for a in (0, 1)]
    assert rare == [0, 10]
    rows = json.loads((root / "comparison.json").read_text())["rows"]
    assert [r["alpha"] for r in rows] == [0.0, 1.0] and [r["rare_share_achieved"] for r in rows] == [0.0, 1.0]
    text = comparison.read_text()
    assert "alpha_0/report/report.md" in text and "alpha_1/report/report.md" in text
    between = json.loads((root / "comparison.json").read_text())["between_alphas"]
    assert [(c["a"]["label"], c["b"]["label"]) for c in between] == [("α=0 stage1", "α=1 stage1")]
    assert "### α=0 stage1 → α=1 stage1" in text and "| 0 | stage1 |" in text
    assert (root / "comparison.png").read_bytes()[:4] == b"\x89PNG"


def test_gold_keys_for_knowledge_questions_only():
    from medssr_nemo.pipeline.steps import stage1_training_records
    from medssr_nemo.records import QuestionRecord

    kg = QuestionRecord(id="kg", question="q?", options=["a", "b", "c"], gold="C", meta={"origin": "knowledge"}, rare=True)
    seed = QuestionRecord(id="seed", question="s?", options=["a", "b"], gold="A", meta={"origin": "seed"})
    dropped_kg = QuestionRecord(id="kg2", question="r?", options=["a", "b"], gold="B", meta={"origin": "knowledge"}, rare=True)
    votes = [dataclasses.replace(kg, label="A", label_source="pseudo"),
             dataclasses.replace(seed, label="B", label_source="pseudo")]
    pseudo = stage1_training_records([kg, seed, dropped_kg], votes, "pseudo")
    assert [(r.id, r.label, r.label_source) for r in pseudo] == [("kg", "A", "pseudo"), ("seed", "B", "pseudo")]
    gold = stage1_training_records([kg, seed, dropped_kg], votes, "gold")
    assert [(r.id, r.label, r.label_source) for r in gold] == [("kg", "C", "gold"), ("seed", "B", "pseudo"),
                                                               ("kg2", "B", "gold")]


def test_seed_pools_outside_the_prepared_data_are_a_clear_error(tiny_model, tmp_path, capsys):
    from medssr_nemo.cli.main import main as medssr

    run_dir = tmp_path / "run"
    code = medssr(["run", *tiny_overrides(tiny_model, run_dir, "data.pools=[medmcqa]", "synthesis.seed_pools=[medmcqa,mmlu]")])
    assert code == 1
    err = capsys.readouterr().err
    assert "synthesis.seed_pools" in err and "data.pools" in err and "mmlu" in err
    # the finished step is kept, and the failed one is marked so
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["steps"]["real_data"]["status"] == "done" and manifest["steps"]["synthesis"]["status"] == "failed"
    assert (run_dir / "real_data" / "real.jsonl").exists()


@pytest.mark.distributed
def test_two_ranks_under_torchrun_give_the_single_process_result(finished_run, tiny_model, tmp_path):
    """SPMD: both ranks train, label and evaluate (each sampling its share), the main rank alone
    prepares data while the other waits; the pseudo-labels are the single process's bytes and
    data-parallel GRPO must land on the single-process weights."""
    import os
    import subprocess
    import sys

    _, reference_dir, _, _ = finished_run
    run_dir = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           "-m", "medssr_nemo.cli.main", "run", *tiny_overrides(tiny_model, run_dir)],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stdout.count("[1/9]") == 1 and proc.stdout.count("medssr run: finished") == 1   # the main rank speaks
    assert (run_dir / "pseudo_labels" / "pseudo_labels.jsonl").read_bytes() == \
        (reference_dir / "pseudo_labels" / "pseudo_labels.jsonl").read_bytes()
    for stage in ("stage1", "stage2"):
        mine, reference = _weights(run_dir / stage / "hf_model"), _weights(reference_dir / stage / "hf_model")
        for name in reference:
            torch.testing.assert_close(mine[name], reference[name], rtol=1e-4, atol=1e-6, msg=f"{stage} {name}")
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert all(manifest["steps"][name]["status"] == "done" for name in ALL_STEPS)


@pytest.mark.slow
@pytest.mark.timeout(3600)  # the whole quickstart: 12 to 35 minutes on 2 cores, past the suite's 900 s
def test_quickstart_runs_every_step_on_the_embedded_policy(tmp_path):
    """README's first command (minus the install): SmolLM2 + HPO, all steps, about 20 minutes."""
    import subprocess
    import sys

    run_dir = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "medssr_nemo.cli.main", "run", "--config", "quickstart",
                           f"output_dir={run_dir}"], capture_output=True, text=True, timeout=3600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1].endswith(f"report: {run_dir / 'report' / 'report.md'}")
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert all(manifest["steps"][name]["status"] == "done" for name in ALL_STEPS)
    summary = json.loads((run_dir / "report" / "summary.json").read_text())
    assert summary["setting"]["model"]["name"] == "smollm2-135m" and summary["scale_gaps"]
    assert [summary["training"][s]["steps"] for s in ("stage1", "stage2")] == [6, 6]
    assert [c["label"] for c in summary["evaluation"]["checkpoints"]] == ["base", "stage1", "stage2"]
    assert all(len(c["benchmarks"]) == 10 for c in summary["evaluation"]["checkpoints"])
    text = (run_dir / "report" / "report.md").read_text()
    assert "**Scale.**" in text
    # stage 1 trains on the quickstart's knowledge-keyed questions, so the report shows the collapse monitor
    assert "**Collapse monitor** (questions with a knowledge-base key)" in text and "| stage1 |" in text


@pytest.mark.slow
def test_sigkill_during_stage1_then_the_same_command_finishes_like_an_uninterrupted_run(finished_run, tiny_model,
                                                                                        tmp_path):
    """A real SIGKILL of `medssr run` once stage 1 has written a checkpoint, then the same command."""
    import os
    import signal
    import subprocess
    import sys
    import time

    _, reference_dir, _, _ = finished_run
    run_dir = tmp_path / "run"
    command = [sys.executable, "-m", "medssr_nemo.cli.main", "run", *tiny_overrides(tiny_model, run_dir)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoints = run_dir / "stage1" / "checkpoints"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and proc.poll() is None:
        if checkpoints.exists() and any(checkpoints.iterdir()):
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.05)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before stage 1 wrote a checkpoint"
    rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "stage 1: self-supervised GRPO on pseudo-labelled synthetic questions: resuming" in rerun.stdout
    for stage in ("stage1", "stage2"):
        mine, reference = _weights(run_dir / stage / "hf_model"), _weights(reference_dir / stage / "hf_model")
        assert all(torch.equal(mine[k], reference[k]) for k in reference), stage
    assert _metrics_without_timing(run_dir / "stage1" / "metrics.jsonl") == \
        _metrics_without_timing(reference_dir / "stage1" / "metrics.jsonl")


def test_the_megatron_backend_runs_both_stages(tiny_model, tmp_path):
    """The paper-scale model files train with policy.backend=megatron: the pipeline chains it the
    same way (stage 2 starts from the Hugging Face export of stage 1)."""
    run_dir = tmp_path / "run"
    learnable = f"[{{name: '{__name__}:shorter_is_better'}}]"   # a signal a random tiny model can follow
    cfg = load_config("base", tiny_overrides(tiny_model, run_dir, "policy.backend=megatron", "pipeline.stage1.steps=2",
                                             "eval.benchmarks=[medqa]", "rollout.top_k=4",
                                             f"reward.sources.pseudo={learnable}", f"reward.sources.gold={learnable}"))
    result = run_pipeline(cfg, progress=False, echo=lambda _: None)
    assert set(result.actions.values()) == {"ran"}
    base, stage1, stage2 = (_weights(p) for p in (tiny_model, run_dir / "stage1" / "hf_model", run_dir / "stage2" / "hf_model"))
    assert base.keys() == stage1.keys() == stage2.keys()
    assert any(not torch.equal(base[k], stage1[k]) for k in base)      # stage 1 trained
    assert any(not torch.equal(stage1[k], stage2[k]) for k in base)    # stage 2 went on from it
    assert f"path: {run_dir / 'stage1' / 'hf_model'}" in (run_dir / "stage2" / "config.yaml").read_text()


def test_a_new_vote_rule_re_votes_the_kept_samples_without_sampling_again(finished_run, tiny_model, tmp_path):
    _, reference_dir, _, _ = finished_run
    run_dir = tmp_path / "run"
    shutil.copytree(reference_dir, run_dir)
    samples = run_dir / "pseudo_labels" / "pseudo_labels.samples.jsonl"
    before = (samples.read_bytes(), samples.stat().st_mtime_ns)
    lines: list[str] = []
    result = run_pipeline(load_config("base", tiny_overrides(tiny_model, run_dir, "label.min_agreement=1.0",
                                                             "label.tie_rule=lowest_letter")),
                          progress=False, echo=lines.append)
    assert result.actions["synthesis"] == "skipped" and result.actions["pseudo_labels"] == "reran"
    assert "label.min_agreement: 0.5 -> 1.0" in "\n".join(lines)
    assert (samples.read_bytes(), samples.stat().st_mtime_ns) == before     # no new sampling
    card = json.loads((run_dir / "pseudo_labels" / "pseudo_labels.card.json").read_text())
    assert card["vote_rule"]["min_agreement"] == 1.0 and card["vote_rule"]["tie_rule"] == "lowest_letter"
    votes = [json.loads(line) for line in (run_dir / "pseudo_labels" / "pseudo_labels.votes.jsonl").read_text().splitlines()]
    assert all(v["kept"] == (v["agreement"] == 1.0) for v in votes)
    # a new n changes what is sampled: the kept samples no longer fit and are drawn again
    run_pipeline(load_config("base", tiny_overrides(tiny_model, run_dir, "label.num_samples=2")),
                 progress=False, echo=lambda _: None)
    header = json.loads(samples.read_text().splitlines()[0])
    assert header["identity"]["settings"]["num_samples"] == 2
    entries = [json.loads(line) for line in samples.read_text().splitlines()[1:]]
    assert len(entries) == 10 and all(len(e["answers"]) == 2 for e in entries)
