"""User mistakes on the command line are one clear line and a non-zero exit status.

Each of these behaved differently on main before this change: a checkpoint path that does not
exist gave a hub "Repo id must be in the form ..." traceback, ``medssr eval --list`` exited 0
with a configured benchmark unavailable, and ``medssr train`` loaded the model before checking
``train.data``.
"""

from __future__ import annotations

import pytest

from medssr_nemo.cli.main import main as medssr


def test_a_checkpoint_path_that_does_not_exist_is_one_line(tmp_path, capsys):
    missing = tmp_path / "no" / "such" / "ckpt"
    assert medssr(["eval", f"eval.checkpoints=[{missing}]", "eval.benchmarks=[pubmedqa]", "eval.limit=1",
                   f"eval.output_dir={tmp_path / 'out'}"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == (f"medssr eval: error: checkpoint 'ckpt': model path {missing} does not exist "
                   "(and it is not a hub id such as Qwen/Qwen3-8B-Base)")
    assert not (tmp_path / "out").exists()


def test_a_hub_id_that_cannot_be_loaded_is_one_line(monkeypatch):
    from medssr_nemo.models.loading import load_tokenizer

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FileNotFoundError) as err:
        load_tokenizer("no-such-org/no-such-model-xyz")
    assert str(err.value).startswith("cannot load model 'no-such-org/no-such-model-xyz': ")
    assert "\n" not in str(err.value)


def test_eval_list_fails_when_a_configured_benchmark_is_unavailable(tmp_path, capsys):
    assert medssr(["eval", "--list", f"+eval.custom_benchmarks.gone.path={tmp_path / 'gone.jsonl'}",
                   "+eval.custom_benchmarks.gone.format=mcq_jsonl"]) == 1
    captured = capsys.readouterr()
    assert "gone\tunavailable" in captured.out
    assert "configured benchmark(s) unavailable: gone" in captured.err


def test_train_checks_train_data_before_loading_the_model(tmp_path, capsys, monkeypatch):
    from medssr_nemo import registry

    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded before train.data was checked")
    original = registry.get
    monkeypatch.setattr(registry, "get", lambda kind, name: no_model if kind == "policy_backend" else original(kind, name))
    assert medssr(["train", f"train.data={tmp_path / 'missing.jsonl'}", f"output_dir={tmp_path / 'run'}"]) == 1
    assert f"question records file not found: {tmp_path / 'missing.jsonl'}" in capsys.readouterr().err
