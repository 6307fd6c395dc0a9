"""Experiment trackers selected by ``train.loggers``: what W&B (offline) and MLflow (file store)
receive from a real training run and from a report, run names from the run directory, and a
failing tracker that warns once and never stops training."""

from __future__ import annotations

import json
import logging
import struct
import sys
from pathlib import Path

import pytest
import torch

from medssr_nemo import registry
from medssr_nemo.config import load_config
from medssr_nemo.grpo.metrics_log import read_metrics
from medssr_nemo.grpo.trainer import GRPOTrainer
from medssr_nemo.models import make_tiny_model
from medssr_nemo.records import QuestionRecord
from medssr_nemo.tracking import RunIdentity, TrackerSet, trackers_for
from medssr_nemo.tracking.interfaces import Tracker
from medssr_nemo.tracking.results import eval_summary_values, log_results

RECORDS = [QuestionRecord(id=f"q{i}", question=f"Question {i}?", options=["alpha", "beta", "gamma", "delta"],
                          gold="ABCD"[i % 4]) for i in range(8)]
TINY = ["model.prompt_style=base", "grpo.group_size=2", "grpo.prompts_per_step=2", "grpo.kl_coef=0.0",
        "rollout.max_new_tokens=3", "policy.micro_batch_size=4", "train.save_hf=false", "train.save_every=10"]


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "wandb-cache"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _train(out: Path, steps: int, *extra: str) -> list[dict]:
    cfg = load_config("base", [*TINY, f"output_dir={out}", f"train.steps={steps}", *extra])
    model, tokenizer = make_tiny_model("llama", seed=0)
    policy = registry.get("policy_backend", "hf")(cfg, model=model, tokenizer=tokenizer)
    GRPOTrainer(cfg, records=RECORDS, policy=policy, show_progress=False).setup().train()
    return read_metrics(out)


# ------------------------------------------------------------------ reading back what W&B wrote
def wandb_records(run_dir: Path) -> list:
    """Every record of an offline run's ``run-<id>.wandb`` transaction log, read with the format's
    own framing (a 7-byte header, then 32 KiB blocks of records each with a 7-byte header:
    CRC32C, length, type FULL/FIRST/MIDDLE/LAST) and W&B's protobuf ``Record``."""
    from wandb.proto import wandb_internal_pb2

    data = next(run_dir.glob("run-*.wandb")).read_bytes()
    assert data[:4] == b":W&B"
    records, pos, pending, block = [], 7, b"", 32768
    while pos + 7 <= len(data):
        if block - pos % block < 7:                     # block trailer too short for a header
            pos += block - pos % block
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if kind == 0 and length == 0:
            pos += block - pos % block
            continue
        chunk = data[pos + 7:pos + 7 + length]
        pos += 7 + length
        pending = chunk if kind in (1, 2) else pending + chunk
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    return records


def wandb_received(root: Path) -> dict:
    runs = sorted((root / "wandb").glob("offline-run-*"))
    assert runs, f"no offline W&B run under {root / 'wandb'}"
    history, config, summary, run = [], {}, {}, None
    for record in (r for d in runs for r in wandb_records(d)):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run = record.run
            config.update({i.key: json.loads(i.value_json) for i in record.run.config.update})
        elif kind == "config":
            config.update({i.key: json.loads(i.value_json) for i in record.config.update})
        elif kind == "history":
            history.append({i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in record.history.item})
        elif kind == "summary":
            summary.update({i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in record.summary.update})
    return {"run": run, "config": config, "history": history, "summary": summary, "files": runs[-1] / "files"}


def mlflow_client(root: Path):
    import os

    from mlflow.tracking import MlflowClient

    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
    return MlflowClient(tracking_uri=(root / "mlruns").as_uri())


def mlflow_run(root: Path, name: str):
    client = mlflow_client(root)
    experiment = client.get_experiment_by_name("medssr_nemo")
    runs = client.search_runs([experiment.experiment_id], filter_string=f"tags.mlflow.runName = '{name}'")
    assert len(runs) == 1, [r.info.run_name for r in client.search_runs([experiment.experiment_id])]
    return client, runs[0]


# ------------------------------------------------------------------ training
def test_training_logs_config_and_every_step_to_wandb_offline_and_mlflow_file_store(tmp_path):
    out = tmp_path / "myrun" / "stage1"
    logged = _train(out, 3, "train.loggers=[jsonl,wandb,mlflow]")

    wb = wandb_received(tmp_path / "myrun")
    assert (wb["run"].display_name, wb["run"].run_group) == ("myrun/stage1", "myrun")
    assert wb["config"]["train"]["loggers"] == ["jsonl", "wandb", "mlflow"]
    steps = [h for h in wb["history"] if "reward/mean" in h]
    assert [h["_step"] for h in steps] == [1, 2, 3]
    assert [h["reward/mean"] for h in steps] == pytest.approx([row["reward/mean"] for row in logged])

    client, run = mlflow_run(tmp_path / "myrun", "myrun/stage1")
    assert run.data.params["grpo.group_size"] == "2" and run.data.tags["medssr.group"] == "myrun"
    history = client.get_metric_history(run.info.run_id, "reward/mean")
    assert [(m.step, m.value) for m in history] == [(r["step"], pytest.approx(r["reward/mean"])) for r in logged]
    assert "config.yaml" in [a.path for a in client.list_artifacts(run.info.run_id)]


def test_tensorboard_gets_every_step(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "tb" / "stage1"
    logged = _train(out, 2, "train.loggers=[jsonl,tensorboard]")
    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    scalars = events.Scalars("reward/mean")
    assert [(e.step, e.value) for e in scalars] == [(r["step"], pytest.approx(r["reward/mean"])) for r in logged]
    assert "config/text_summary" in events.Tags()["tensors"]          # the resolved config, as text


def test_a_resumed_run_continues_the_same_tracker_runs(tmp_path):
    out = tmp_path / "r" / "stage2"
    _train(out, 2, "train.loggers=[wandb,mlflow]", "train.save_every=1")
    _train(out, 3, "train.loggers=[wandb,mlflow]", "train.save_every=1")
    client, run = mlflow_run(tmp_path / "r", "r/stage2")     # one run, not two
    assert [m.step for m in client.get_metric_history(run.info.run_id, "reward/mean")] == [1, 2, 3]
    ids = {wandb_records(d)[0].run.run_id for d in (tmp_path / "r" / "wandb").glob("offline-run-*")}
    assert len(ids) == 1


class Flaky(Tracker):
    """Works for the first step, then fails on every call, as a tracker losing its network would."""

    name = "mlflow"
    calls = 0

    def __init__(self, identity, settings):
        pass

    def log_config(self, config):
        pass

    def log_metrics(self, step, metrics):
        Flaky.calls += 1
        if Flaky.calls > 1:
            raise ConnectionError("tracking server unreachable")

    def log_summary(self, values):
        raise ConnectionError("tracking server unreachable")

    def log_image(self, key, path):
        raise ConnectionError("tracking server unreachable")

    def log_file(self, path):
        raise ConnectionError("tracking server unreachable")

    def close(self):
        raise ConnectionError("tracking server unreachable")


def test_a_failing_tracker_warns_once_and_training_finishes(tmp_path, monkeypatch, caplog):
    from medssr_nemo.tracking import trackers

    monkeypatch.setattr(trackers, "_factory", lambda name: Flaky)
    with caplog.at_level(logging.WARNING, logger="medssr_nemo.tracking"):
        logged = _train(tmp_path / "run", 4, "train.loggers=[jsonl,mlflow]")
    assert [row["step"] for row in logged] == [1, 2, 3, 4]
    warnings = [r.getMessage() for r in caplog.records if "mlflow logger" in r.getMessage()]
    assert len(warnings) == 1 and "unreachable" in warnings[0] and "switched off" in warnings[0]


def test_a_tracker_that_is_not_installed_warns_with_the_extra_to_install(tmp_path, monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "wandb", None)      # import wandb -> ImportError
    with caplog.at_level(logging.WARNING, logger="medssr_nemo.tracking"):
        logged = _train(tmp_path / "run", 1, "train.loggers=[jsonl,wandb]")
    assert len(logged) == 1
    assert any("medssr_nemo[wandb]" in r.getMessage() for r in caplog.records)


# ------------------------------------------------------------------ reports
def _evaluation():
    m = {"accuracy_pct_mean": 40.0, "ci95_pct": [20.0, 60.0]}
    return {"checkpoints": [{"label": "base", "benchmarks": {"medqa": m}, "macro_accuracy_pct": 40.0,
                             "macro_ci95_pct": [20.0, 60.0], "rare_accuracy_pct": None}]}


def _comparison():
    row = {"difference_pct": 12.5, "p_value": 0.04}
    return {"a": {"label": "base"}, "b": {"label": "stage2"}, "benchmarks": {"medqa": row}, "average": row}


def test_summary_values_name_every_accuracy_interval_and_comparison():
    values = eval_summary_values(_evaluation(), [_comparison(), {"a": {}, "b": {}, "error": "x"}])
    assert values == {"eval/base/medqa/accuracy_pct": 40.0, "eval/base/medqa/accuracy_pct_ci95_low": 20.0,
                      "eval/base/medqa/accuracy_pct_ci95_high": 60.0, "eval/base/avg/accuracy_pct": 40.0,
                      "eval/base/avg/accuracy_pct_ci95_low": 20.0, "eval/base/avg/accuracy_pct_ci95_high": 60.0,
                      "compare/base_to_stage2/medqa/difference_pct": 12.5, "compare/base_to_stage2/medqa/p_value": 0.04,
                      "compare/base_to_stage2/avg/difference_pct": 12.5, "compare/base_to_stage2/avg/p_value": 0.04}


def test_report_sends_the_eval_summary_and_figures(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    report = tmp_path / "quick" / "report"
    report.mkdir(parents=True)
    fig, _ = plt.subplots()
    fig.savefig(report / "accuracy_per_benchmark.png")
    plt.close(fig)
    (report / "report.md").write_text("# MedSSR run report\n")
    cfg = load_config("base", ["train.loggers=[jsonl,tensorboard,wandb,mlflow]"])
    log_results(cfg, report, evaluation=_evaluation(), comparisons=[_comparison()],
                figures={"accuracy": report / "accuracy_per_benchmark.png"}, files=[report / "report.md"])

    client, run = mlflow_run(tmp_path / "quick", "quick/report")
    assert run.data.metrics["eval/base/medqa/accuracy_pct_ci95_high"] == 60.0
    assert run.data.metrics["compare/base_to_stage2/avg/p_value"] == 0.04
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"report.md", "config.yaml", "figures"} <= artifacts
    assert [a.path for a in client.list_artifacts(run.info.run_id, "figures")] == ["figures/accuracy_per_benchmark.png"]

    wb = wandb_received(tmp_path / "quick")
    assert wb["summary"]["eval/base/medqa/accuracy_pct"] == 40.0
    assert wb["summary"]["compare/base_to_stage2/medqa/difference_pct"] == 12.5
    assert any(k.startswith("figures/accuracy/") for h in wb["history"] for k in h)     # the image's entry
    assert list((wb["files"] / "media" / "images" / "figures").glob("accuracy_*.png"))
    assert (wb["files"] / "report.md").read_text() == "# MedSSR run report\n"
    assert not (report / "tensorboard").exists()      # TensorBoard follows training only


# ------------------------------------------------------------------ names
@pytest.mark.parametrize("path,name,group", [
    ("runs/quickstart/stage1", "quickstart/stage1", "quickstart"),
    ("runs/sweep/alpha_0.3/stage2", "sweep/alpha_0.3/stage2", "sweep"),
    ("runs/sweep/alpha_0.3/report", "sweep/alpha_0.3/report", "sweep"),
    ("runs/grpo-medmcqa", "grpo-medmcqa", "grpo-medmcqa"),
    ("runs/x/eval", "x/eval", "x"),
])
def test_run_names_and_groups_come_from_the_run_directory(tmp_path, path, name, group):
    identity = RunIdentity.from_directory(tmp_path / path)
    assert (identity.name, identity.group) == (name, group)
    assert identity.run_id == RunIdentity.from_directory(tmp_path / path).run_id
    assert identity.run_id != RunIdentity.from_directory(tmp_path / path / "other").run_id


def test_configured_names_win_and_jsonl_alone_opens_no_tracker(tmp_path):
    cfg = load_config("base", ["train.loggers=[jsonl]"])
    assert not trackers_for(cfg, tmp_path / "run")
    identity = RunIdentity.from_directory(tmp_path / "r" / "stage1", "proj", name="mine", group="ablations")
    assert (identity.project, identity.name, identity.group) == ("proj", "mine", "ablations")


def test_unknown_logger_is_a_config_error():
    from medssr_nemo.config import ConfigError

    with pytest.raises(ConfigError, match=r"train.loggers\[1\]='neptune' is not allowed"):
        load_config("base", ["train.loggers=[jsonl,neptune]"])


def test_trackerset_without_trackers_is_a_no_op(tmp_path):
    empty = TrackerSet()
    empty.log_metrics(1, {"a": 1.0})
    empty.close()
    assert not empty


# ------------------------------------------------------------------ `medssr eval` and the Report step end to end
def _tiny_checkpoint_and_benchmark(tmp_path: Path, seed: int = 0) -> tuple[Path, Path]:
    """A tiny random-weight qwen3 checkpoint and a 3-question custom benchmark."""
    from medssr_nemo.models import save_tiny_model

    checkpoint = save_tiny_model(tmp_path / f"tiny-qwen3-instruct-{seed}", "qwen3", seed=seed, hidden_size=32,
                                 intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                                 num_key_value_heads=1, head_dim=16)
    bench = tmp_path / "mine.jsonl"
    bench.write_text("".join(json.dumps({"question": f"Which enzyme {i}?", "options": {"A": "one", "B": "two", "C": "three"},
                                         "answer_idx": "AB"[i % 2]}) + "\n" for i in range(3)))
    return checkpoint, bench


def _eval_args(out: Path, checkpoint: Path, bench: Path, label: str) -> list[str]:
    return [f"eval.output_dir={out}", f"eval.checkpoints=[{checkpoint}]", f"eval.checkpoint_labels=[{label}]",
            "eval.benchmarks=[]", f"+eval.custom_benchmarks.mine.path={bench}", "+eval.custom_benchmarks.mine.format=mcq_jsonl",
            "eval.num_samples=1", "eval.max_new_tokens=3", "train.loggers=[jsonl,mlflow]"]


def test_medssr_eval_sends_its_summary_and_chart_to_mlflow(tmp_path, monkeypatch):
    from medssr_nemo.cli.main import main as medssr

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    checkpoint, bench = _tiny_checkpoint_and_benchmark(tmp_path)
    out = tmp_path / "exp" / "eval"
    assert medssr(["eval", "--no-progress", *_eval_args(out, checkpoint, bench, "base"), "eval.chart=true"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    mine = summary["checkpoints"][0]["benchmarks"]["mine"]

    client, run = mlflow_run(tmp_path / "exp", "exp/eval")          # the file store beside the eval directory
    metrics = run.data.metrics
    assert metrics["eval/base/mine/accuracy_pct"] == pytest.approx(mine["accuracy_pct_mean"])
    assert [metrics["eval/base/mine/accuracy_pct_ci95_low"], metrics["eval/base/mine/accuracy_pct_ci95_high"]] == \
        pytest.approx(mine["ci95_pct"])
    assert metrics["eval/base/avg/accuracy_pct"] == pytest.approx(summary["checkpoints"][0]["macro_accuracy_pct"])
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"summary.md", "summary.json", "config.yaml", "figures"} <= artifacts
    assert [a.path for a in client.list_artifacts(run.info.run_id, "figures")] == ["figures/summary.png"]
    local = Path(client.download_artifacts(run.info.run_id, "figures/summary.png", str(tmp_path / "dl")))
    assert local.read_bytes() == (out / "summary.png").read_bytes()


def test_pipeline_report_step_sends_comparisons_and_figures_to_mlflow(tmp_path, monkeypatch):
    from medssr_nemo.eval.runner import run_eval
    from medssr_nemo.pipeline.context import PipelineContext
    from medssr_nemo.pipeline.steps import Report

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    run_dir = tmp_path / "exp"
    base, bench = _tiny_checkpoint_and_benchmark(tmp_path, seed=0)
    trained, _ = _tiny_checkpoint_and_benchmark(tmp_path, seed=1)
    for label, checkpoint in (("base", base), ("stage2", trained)):   # what the Evaluate steps leave
        run_eval(load_config("base", _eval_args(run_dir / f"eval_{label}", checkpoint, bench, label) + ["eval.chart=false"]),
                 progress=False)
    cfg = load_config("base", [f"output_dir={run_dir}", "pipeline.stage1.enabled=false",
                               *_eval_args(run_dir / "unused", base, bench, "base")])
    Report().run(PipelineContext(cfg, run_dir, run_dir, progress=False), run_dir / "report")
    summary = json.loads((run_dir / "report" / "summary.json").read_text())
    average = summary["comparisons"][0]["average"]

    client, run = mlflow_run(run_dir, "exp/report")
    metrics = run.data.metrics
    assert metrics["compare/base_to_stage2/avg/p_value"] == pytest.approx(average["p_value"])
    assert metrics["compare/base_to_stage2/mine/difference_pct"] == pytest.approx(average["difference_pct"])
    assert "eval/stage2/mine/accuracy_pct_ci95_high" in metrics
    figures = {a.path for a in client.list_artifacts(run.info.run_id, "figures")}
    assert "figures/accuracy_per_benchmark.png" in figures
    assert {"report.md", "summary.json"} <= {a.path for a in client.list_artifacts(run.info.run_id)}
