"""``medssr eval compare``: paired tests between two checkpoints' results on the same questions,
and refusal of results that are not comparable question by question."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import pytest
from scipy.stats import binomtest

from medssr_nemo.cli.main import main as medssr
from medssr_nemo.eval.compare import compare, load_checkpoint, markdown, resolve
from medssr_nemo.eval.protocol import EvalProtocol


def write_results(root, label, benchmark, correct, protocol=EvalProtocol(num_samples=1), ids=None, rare=False):
    """One checkpoint's finished benchmark in the layout ``run_eval`` writes; ``correct[q][s]``."""
    ids = ids or [f"q{i}" for i in range(len(correct))]
    out = root / label / benchmark
    out.mkdir(parents=True)
    identity = {"benchmark": benchmark, "checkpoint": f"models/{label}", "protocol": protocol.fingerprint(),
                "num_questions": len(ids), "question_ids_sha256": hashlib.sha256("\n".join(ids).encode()).hexdigest()}
    (out / "protocol.json").write_text(json.dumps(identity))
    rows = [{"benchmark": benchmark, "id": qid, "sample": s, "correct": bool(c)}
            for qid, samples in zip(ids, correct) for s, c in enumerate(samples)]
    (out / "generations.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (out / "metrics.json").write_text(json.dumps({"benchmark": benchmark, "rare": rare}))
    return root / label


def _discordant(both, only_a, only_b, neither):
    a = [[1]] * both + [[1]] * only_a + [[0]] * only_b + [[0]] * neither
    b = [[1]] * both + [[0]] * only_a + [[1]] * only_b + [[0]] * neither
    return a, b


def test_one_sample_comparison_is_exact_mcnemar_on_known_counts(tmp_path):
    a, b = _discordant(10, 2, 9, 19)
    result = compare(load_checkpoint(write_results(tmp_path, "base", "medqa", a)),
                     load_checkpoint(write_results(tmp_path, "stage2", "medqa", b)))
    medqa = result["benchmarks"]["medqa"]
    assert (medqa["only_a"], medqa["only_b"], medqa["test"]) == (2, 9, "exact McNemar")
    assert medqa["difference_pct"] == pytest.approx(17.5)
    assert medqa["p_value"] == pytest.approx(binomtest(2, 11, 0.5).pvalue)
    assert result["average"]["difference_pct"] == pytest.approx(17.5)


def test_average_pairs_each_benchmark_and_marks_the_rare_ones(tmp_path):
    a, b = _discordant(5, 0, 10, 5)
    write_results(tmp_path, "base", "medqa", a)
    write_results(tmp_path, "base", "rarebench", b, rare=True)
    write_results(tmp_path, "stage1", "medqa", b)
    write_results(tmp_path, "stage1", "rarebench", b, rare=True)
    result = compare(load_checkpoint(tmp_path / "base"), load_checkpoint(tmp_path / "stage1"))
    assert result["average"]["difference_pct"] == pytest.approx((50.0 + 0.0) / 2)
    assert result["rare"]["benchmarks"] == ["rarebench"] and result["rare"]["difference_pct"] == 0.0
    assert result["rare"]["p_value"] == pytest.approx(1.0)


def test_several_samples_use_the_sign_flip_test_and_a_widened_interval(tmp_path):
    protocol = EvalProtocol(num_samples=4)
    a = [[1, 0, 0, 0]] * 30
    b = [[1, 1, 0, 0]] * 30
    result = compare(load_checkpoint(write_results(tmp_path, "a", "medqa", a, protocol)),
                     load_checkpoint(write_results(tmp_path, "b", "medqa", b, protocol)), resamples=999)
    medqa = result["benchmarks"]["medqa"]
    assert medqa["test"] == "sign-flip permutation (Monte-Carlo)" and medqa["difference_pct"] == pytest.approx(25.0)
    # every question gained 1 of 4: the bootstrap has no width, the sign-count interval (30 of 30) does
    assert medqa["ci95_pct"] == [pytest.approx(25 * (2 * 0.025 ** (1 / 30) - 1)), pytest.approx(25.0)]
    assert medqa["p_value"] == pytest.approx(0.001)
    assert "sign-flip permutation" in markdown(result) and "paired bootstrap |" not in markdown(result)


def test_three_questions_with_four_samples_are_not_significant_in_the_table(tmp_path):
    protocol = EvalProtocol(num_samples=4)
    result = compare(load_checkpoint(write_results(tmp_path, "a", "medqa", [[0, 0, 0, 0]] * 3, protocol)),
                     load_checkpoint(write_results(tmp_path, "b", "medqa", [[1, 1, 0, 0]] * 3, protocol)))
    assert result["benchmarks"]["medqa"]["p_value"] == pytest.approx(0.25)
    assert result["average"]["p_value"] == pytest.approx(0.25)
    table = markdown(result)
    assert "| 0.250 |" in table and "< 0.001" not in table and "none (too few questions)" in table
    assert "Significant at p < 0.05 (not corrected for 1 comparisons): none" in table


@pytest.mark.parametrize("change,message", [
    (dict(prompt_style="base"), "prompt style differs (chat vs base)"),
    (dict(num_samples=4), "protocol differs in num_samples (1 vs 4)"),
    (dict(temperature=0.0), "protocol differs in temperature (0.6 vs 0.0)"),
])
def test_refuses_results_made_with_another_protocol(tmp_path, change, message):
    one = EvalProtocol(num_samples=1)
    other = dataclasses.replace(one, **change)
    write_results(tmp_path, "a", "medqa", [[1]] * 8, one)
    write_results(tmp_path, "b", "medqa", [[1] * other.num_samples] * 8, other)
    with pytest.raises(ValueError, match="cannot compare") as err:
        compare(load_checkpoint(tmp_path / "a"), load_checkpoint(tmp_path / "b"))
    assert message in str(err.value)


def test_refuses_results_on_other_questions(tmp_path):
    write_results(tmp_path, "a", "medqa", [[1]] * 8)
    write_results(tmp_path, "b", "medqa", [[1]] * 8, ids=[f"x{i}" for i in range(8)])
    with pytest.raises(ValueError, match=r"question ids differ on medqa \(8 vs 8 questions, 16 not shared\)"):
        compare(load_checkpoint(tmp_path / "a"), load_checkpoint(tmp_path / "b"))


def test_another_seed_is_comparable(tmp_path):
    write_results(tmp_path, "a", "medqa", [[1]] * 8, EvalProtocol(num_samples=1, seed=0))
    write_results(tmp_path, "b", "medqa", [[0]] * 8, EvalProtocol(num_samples=1, seed=7))
    assert compare(load_checkpoint(tmp_path / "a"), load_checkpoint(tmp_path / "b"))["benchmarks"]["medqa"]["only_a"] == 8


def test_resolves_pipeline_runs_by_label_and_names_the_options(tmp_path):
    run = tmp_path / "run"
    write_results(run / "eval_base", "base", "medqa", [[1]] * 6)
    write_results(run / "eval_stage2", "stage2", "medqa", [[1]] * 6)
    assert resolve(f"{run}:stage2") == run / "eval_stage2" / "stage2"
    with pytest.raises(ValueError, match="several evaluated checkpoints"):
        resolve(str(run))
    with pytest.raises(FileNotFoundError, match="found: base, stage2"):
        resolve(f"{run}:stage1")
    sweep_run = tmp_path / "run" / "alpha_0.3"          # an α sweep's base lives in the sweep's root
    write_results(sweep_run / "eval_stage1", "stage1", "medqa", [[0]] * 6)
    assert resolve(f"{sweep_run}:base") == run / "eval_base" / "base"


def test_cli_prints_the_table_and_writes_json(tmp_path, capsys):
    a, b = _discordant(10, 2, 9, 19)
    write_results(tmp_path / "eval", "base", "medqa", a)
    write_results(tmp_path / "eval", "stage2", "medqa", b)
    out = tmp_path / "diff.json"
    code = medssr(["eval", "compare", f"{tmp_path / 'eval'}:base", f"{tmp_path / 'eval'}:stage2", "--json", str(out)])
    text = capsys.readouterr().out
    assert code == 0
    assert "| medqa | 40 | 30.0 | 47.5 | +17.5 [" in text and "| 0.065 | exact McNemar |" in text
    assert json.loads(out.read_text())["benchmarks"]["medqa"]["only_b"] == 9


def test_cli_refusal_is_one_clear_line(tmp_path, capsys):
    write_results(tmp_path, "a", "medqa", [[1]] * 8)
    write_results(tmp_path, "b", "medqa", [[1]] * 8, EvalProtocol(num_samples=1, prompt_style="base"))
    assert medssr(["eval", "compare", str(tmp_path / "a"), str(tmp_path / "b")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("medssr eval compare: error: cannot compare") and "prompt style differs" in err


def test_checkpoints_in_order_are_compared_pairwise_and_last_against_first(tmp_path):
    from medssr_nemo.eval.compare import compare_in_order, markdown_many

    dirs = [write_results(tmp_path, label, "medqa", [[v]] * 10) for label, v in (("base", 0), ("stage1", 0), ("stage2", 1))]
    write_results(tmp_path, "other", "medqa", [[1]] * 10, EvalProtocol(num_samples=1, prompt_style="base"))
    results = compare_in_order(dirs + [tmp_path / "other"])
    assert [(r["a"]["label"], r["b"]["label"]) for r in results] == [
        ("base", "stage1"), ("stage1", "stage2"), ("stage2", "other"), ("base", "other")]
    assert results[1]["benchmarks"]["medqa"]["only_b"] == 10
    assert "prompt style differs" in results[2]["error"]
    text = markdown_many(results)
    assert "### stage1 → stage2" in text and "### stage2 → other\n\nNot compared: cannot compare" in text


def test_checkpoints_with_the_same_label_are_named_by_their_directories(tmp_path):
    a = write_results(tmp_path / "seed0", "smollm2", "medqa", [[1]] * 6, EvalProtocol(num_samples=1, seed=0))
    b = write_results(tmp_path / "seed1", "smollm2", "medqa", [[1]] * 6, EvalProtocol(num_samples=1, seed=1))
    result = compare(load_checkpoint(a), load_checkpoint(b))
    assert (result["a"]["label"], result["b"]["label"]) == ("seed0/smollm2", "seed1/smollm2")
