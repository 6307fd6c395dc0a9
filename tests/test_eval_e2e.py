"""End to end: ``medssr eval`` on real benchmark files with real models, through the CLI."""

from __future__ import annotations

import json

import pytest

from medssr_nemo.cli.main import main as medssr

ALL_BENCHMARKS = "[medqa,medmcqa,pubmedqa,bioasq,mmlu,lancet,nejm,medbullets,medxpertqa,rarebench]"


@pytest.fixture(scope="module")
def two_tiny_checkpoints(tmp_path_factory):
    from medssr_nemo.models import save_tiny_model

    root = tmp_path_factory.mktemp("ckpts")
    return [save_tiny_model(root / "base", "llama", seed=0), save_tiny_model(root / "stage1", "qwen3", seed=1)]


def test_cli_compares_two_checkpoints_and_writes_every_output(two_tiny_checkpoints, tmp_path, capsys):
    base, stage1 = two_tiny_checkpoints
    out = tmp_path / "eval"
    code = medssr(["eval", "--no-progress", f"eval.output_dir={out}", f"eval.checkpoints=[{base},{stage1}]",
                   "eval.checkpoint_labels=[base,stage1]", "eval.benchmarks=[medqa,rarebench_mme]",
                   "eval.limit=2", "eval.num_samples=2", "eval.max_new_tokens=8"])
    assert code == 0
    table = capsys.readouterr().out
    assert "| base |" in table and "| stage1 |" in table and "rarebench_mme (rare)" in table

    summary = json.loads((out / "summary.json").read_text())
    assert [c["label"] for c in summary["checkpoints"]] == ["base", "stage1"]
    for ckpt in summary["checkpoints"]:
        rare = ckpt["benchmarks"]["rarebench_mme"]["accuracy_pct_mean"]
        medqa = ckpt["benchmarks"]["medqa"]["accuracy_pct_mean"]
        assert ckpt["macro_accuracy_pct"] == pytest.approx((rare + medqa) / 2)
        assert ckpt["rare_accuracy_pct"] == pytest.approx(rare)
        for name in ("medqa", "rarebench_mme"):
            rows = [json.loads(line) for line in (out / ckpt["label"] / name / "generations.jsonl").read_text().splitlines()]
            assert len(rows) == 4 and {r["sample"] for r in rows} == {0, 1}
            # a random model states no answer: every sample was re-decoded, to one of the
            # benchmark's letters or (two tokens for a Llama-family model, e.g. "AB") to none
            assert all(r["free_answer"] is None and r["redecode_text"] is not None for r in rows)
            assert all(r["answer"] is None or r["answer"] in "ABCDE" for r in rows)
            metrics = json.loads((out / ckpt["label"] / name / "metrics.json").read_text())
            assert metrics["no_answer_before_redecode"] == 4
            assert metrics["recovered_by_redecode"] + metrics["unknown_after_redecode"] == 4
            assert metrics["prompt_style"] == ckpt["prompt_style"]
    # the directory named "base" gets the base template; the other has a chat template
    assert [c["prompt_style"] for c in summary["checkpoints"]] == ["base", "chat"]

    import matplotlib.image

    image = matplotlib.image.imread(out / "summary.png")
    assert image.shape[0] > 100 and image.shape[1] > 100
    assert "| checkpoint | medqa | rarebench_mme (rare) | Avg | Rare |" in (out / "summary.md").read_text()


def test_summary_intervals_and_paired_comparison_from_a_real_run(two_tiny_checkpoints, tmp_path, capsys):
    base, stage1 = two_tiny_checkpoints
    out = tmp_path / "eval"
    assert medssr(["eval", "--no-progress", f"eval.output_dir={out}", f"eval.checkpoints=[{base},{stage1}]",
                   "eval.checkpoint_labels=[base,stage1]", "eval.benchmarks=[pubmedqa,rarebench_mme]",
                   "eval.limit=3", "eval.num_samples=2", "eval.max_new_tokens=4", "eval.chart=false",
                   "eval.prompt_style=chat"]) == 0   # one template for both: compare refuses mixed styles
    summary = json.loads((out / "summary.json").read_text())
    for ckpt in summary["checkpoints"]:
        for metrics in ckpt["benchmarks"].values():
            low, high = metrics["ci95_pct"]
            # two samples: a question bootstrap, or Wilson where every question scored the same
            assert metrics["ci_method"] in ("bootstrap", "wilson") and low <= metrics["accuracy_pct_mean"] <= high
            assert high - low > 10                                 # 3 questions cannot give a narrow interval
            assert metrics["mdd_pct"] is None                      # 3 questions detect nothing
        assert ckpt["macro_ci95_pct"][0] <= ckpt["macro_accuracy_pct"] <= ckpt["macro_ci95_pct"][1]
        assert ckpt["rare_ci95_pct"] is not None
    capsys.readouterr()
    assert medssr(["eval", "compare", f"{out}:base", f"{out}:stage1", "--json", str(tmp_path / "compare.json")]) == 0
    table = capsys.readouterr().out
    assert "### base → stage1" in table and "| pubmedqa | 3 |" in table and "| rarebench_mme (rare) | 3 |" in table
    assert "sign-flip permutation" in table and "none (too few questions)" in table
    result = json.loads((tmp_path / "compare.json").read_text())
    rows = list(result["benchmarks"].values()) + [result["average"]]
    # 3 questions a benchmark (6 on the average of 2): no p-value under 2·0.5⁶, no interval without width
    assert all(r["p_value"] >= 2 * 0.5 ** 6 and r["ci95_pct"][1] - r["ci95_pct"][0] > 0 for r in rows)


def test_cli_lists_every_benchmark_with_its_count(capsys):
    assert medssr(["eval", "--list"]) == 0
    lines = dict(line.split("\t")[:2] for line in capsys.readouterr().out.splitlines())
    assert lines["medqa"] == "1273" and lines["medxpertqa"] == "2450" and lines["rarebench_pumch_adm"] == "75"
    assert lines["raredis_sub"] == "unavailable" or lines["raredis_sub"].isdigit()
    assert len(lines) >= 18


def test_cli_reports_a_bad_benchmark_name(capsys):
    assert medssr(["eval", "eval.benchmarks=[medqa,nope]", "eval.limit=1"]) == 1
    assert "unknown benchmark(s) ['nope']" in capsys.readouterr().err


@pytest.mark.slow
def test_embedded_smollm2_on_a_subsample_of_every_benchmark(tmp_path):
    """The real embedded policy (SmolLM2-135M-Instruct) on one question of each of the ten
    benchmarks, with the paper's sampling settings except 32 new tokens and one sample."""
    out = tmp_path / "eval"
    code = medssr(["eval", "--no-progress", f"eval.output_dir={out}", f"eval.benchmarks={ALL_BENCHMARKS}",
                   "eval.limit=1", "eval.num_samples=1", "eval.max_new_tokens=32"])
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    results = summary["checkpoints"][0]["benchmarks"]
    assert len(results) == 10
    for name, metrics in results.items():
        assert metrics["num_generations"] == 1, name
    assert summary["checkpoints"][0]["label"] == "smollm2-135m-instruct"
