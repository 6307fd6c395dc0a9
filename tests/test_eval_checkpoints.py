"""One ``medssr eval`` over several checkpoints: each gets its own prompt template (recorded in
its results), and results are reused only for the same benchmark file and the same weights.

On main before this change every checkpoint of a run used one prompt style, and an output
directory's results were reported as "already evaluated" after the benchmark file or the
checkpoint's weights had changed; these tests fail there.
"""

from __future__ import annotations

import copy
import functools
import json
import logging

import pytest

from medssr_nemo.config import load_config
from medssr_nemo.eval.runner import default_policy_loader, run_eval
from medssr_nemo.models import save_tiny_model
from medssr_nemo.models.tiny import make_tiny_tokenizer

from eval_loaders import watching_loader

SHAPE = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
             num_key_value_heads=1, head_dim=16)


@functools.lru_cache(maxsize=None)
def _tokenizer():
    return make_tiny_tokenizer("qwen3")


def _save(directory, seed=0, chat_template=True):
    tokenizer = copy.deepcopy(_tokenizer())
    if not chat_template:
        tokenizer.chat_template = None
    return save_tiny_model(directory, "qwen3", seed=seed, tokenizer=tokenizer, **SHAPE)


@pytest.fixture
def bench_file(tmp_path):
    path = tmp_path / "mine.jsonl"
    rows = [{"question": f"Which enzyme {i}?", "options": {"A": "one", "B": "two", "C": "three"}, "answer_idx": "AB"[i % 2]}
            for i in range(3)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _cfg(out, checkpoints, bench_file, *extra):
    return load_config("base", [
        f"eval.output_dir={out}", f"eval.checkpoints=[{','.join(str(c) for c in checkpoints)}]", "eval.benchmarks=[]",
        f"+eval.custom_benchmarks.mine.path={bench_file}", "+eval.custom_benchmarks.mine.format=mcq_jsonl",
        "eval.num_samples=1", "eval.max_new_tokens=3", "eval.chart=false", *extra,
    ])


def _recording_loader(cfg, seen):
    """The real loader; records the first free-generation prompt each checkpoint is given."""
    return watching_loader(cfg, lambda reference, tokenizer, prompts:
                           seen.setdefault(reference, tokenizer.decode(prompts[0])))


def test_base_and_instruct_checkpoints_each_get_their_own_template(tmp_path, bench_file):
    base = _save(tmp_path / "tiny-Qwen3-Base")
    instruct = _save(tmp_path / "tiny-qwen3-instruct", seed=1)
    plain = _save(tmp_path / "tiny-qwen3-plain", seed=2, chat_template=False)
    cfg = _cfg(tmp_path / "eval", [base, instruct, plain], bench_file)
    seen: dict[str, str] = {}
    summary = run_eval(cfg, policy_loader=_recording_loader(cfg, seen), progress=False)

    assert [c["prompt_style"] for c in summary["checkpoints"]] == ["base", "chat", "base"]
    assert seen[str(base)].startswith("You are a professional medical expert")
    assert seen[str(instruct)].startswith("<|im_start|>system\nPlease think step by step")
    assert seen[str(plain)].startswith("You are a professional medical expert")
    for ckpt in summary["checkpoints"]:
        metrics = json.loads((tmp_path / "eval" / ckpt["label"] / "mine" / "metrics.json").read_text())
        identity = json.loads((tmp_path / "eval" / ckpt["label"] / "mine" / "protocol.json").read_text())
        assert metrics["prompt_style"] == identity["protocol"]["prompt_style"] == ckpt["prompt_style"]
    assert summary["protocol"]["prompt_style"] == "per checkpoint"


def test_a_per_checkpoint_override_wins(tmp_path, bench_file):
    base = _save(tmp_path / "tiny-Qwen3-Base")
    instruct = _save(tmp_path / "tiny-qwen3-instruct", seed=1)
    cfg = _cfg(tmp_path / "eval", [base, instruct], bench_file, "eval.checkpoint_prompt_styles=[chat,null]")
    summary = run_eval(cfg, progress=False)
    assert [c["prompt_style"] for c in summary["checkpoints"]] == ["chat", "chat"]


def _generations(cfg):
    calls: list[int] = []
    load = default_policy_loader(cfg)

    def loader(reference):
        engine, tokenizer = load(reference)
        original = engine.generate
        engine.generate = lambda p, s, seeds: (calls.append(len(p)), original(p, s, seeds))[1]
        return engine, tokenizer
    run_eval(cfg, policy_loader=loader, progress=False)
    return calls


def test_new_weights_in_the_same_place_are_evaluated_again(tmp_path, bench_file, caplog):
    ckpt = _save(tmp_path / "ckpt", seed=0)
    cfg = _cfg(tmp_path / "eval", [ckpt], bench_file)
    assert _generations(cfg)                      # first run generates
    assert not _generations(cfg)                  # same weights, same file: reused
    _save(tmp_path / "ckpt", seed=5)              # new weights, same path
    with caplog.at_level(logging.WARNING, logger="medssr_nemo.eval.runner"):
        assert _generations(cfg)
    assert "evaluating again: the checkpoint's weights changed" in caplog.text
    assert (tmp_path / "eval" / "ckpt" / "mine" / "superseded" / "1" / "metrics.json").exists()


def test_a_changed_benchmark_file_is_evaluated_again(tmp_path, bench_file, caplog):
    ckpt = _save(tmp_path / "ckpt")
    cfg = _cfg(tmp_path / "eval", [ckpt], bench_file)
    _generations(cfg)
    bench_file.write_text(bench_file.read_text().replace("Which enzyme 1?", "Which hormone 1?"))
    with caplog.at_level(logging.WARNING, logger="medssr_nemo.eval.runner"):
        assert _generations(cfg)
    assert "evaluating again: the benchmark file changed" in caplog.text


def test_results_without_recorded_hashes_are_evaluated_again(tmp_path, bench_file, caplog):
    ckpt = _save(tmp_path / "ckpt")
    cfg = _cfg(tmp_path / "eval", [ckpt], bench_file)
    _generations(cfg)
    identity_path = tmp_path / "eval" / "ckpt" / "mine" / "protocol.json"
    identity = json.loads(identity_path.read_text())
    del identity["benchmark_files_sha256"], identity["checkpoint_weights_sha256"]   # as written before
    identity_path.write_text(json.dumps(identity))
    with caplog.at_level(logging.WARNING, logger="medssr_nemo.eval.runner"):
        assert _generations(cfg)
    assert "not recorded by the earlier run" in caplog.text


def test_other_settings_in_the_same_directory_are_still_refused(tmp_path, bench_file):
    ckpt = _save(tmp_path / "ckpt")
    _generations(_cfg(tmp_path / "eval", [ckpt], bench_file))
    with pytest.raises(ValueError, match=r"other settings \(differs in \['protocol'\]\)"):
        run_eval(_cfg(tmp_path / "eval", [ckpt], bench_file, "eval.top_k=5"), progress=False)


def test_the_same_benchmark_file_elsewhere_is_reused(tmp_path, bench_file):
    """The identity holds file contents, not locations: a moved data root re-runs nothing."""
    ckpt = _save(tmp_path / "ckpt")
    assert _generations(_cfg(tmp_path / "eval", [ckpt], bench_file))
    moved = tmp_path / "elsewhere" / bench_file.name
    moved.parent.mkdir()
    moved.write_bytes(bench_file.read_bytes())
    assert not _generations(_cfg(tmp_path / "eval", [ckpt], moved))


HUB_ID = "acme/tiny-qwen3"   # never fetched: the "hub" is a local directory the loader reveals


def _hub_setup(tmp_path, bench_file, monkeypatch):
    """A hub checkpoint that is not in the local cache until its first load "downloads" it:
    fingerprinting sees the snapshot only once ``downloaded`` is set (as ``local_model_dir``
    sees a hub id only once it is in the Hugging Face cache)."""
    import medssr_nemo.models.fingerprint as fingerprint

    snapshot = _save(tmp_path / "hub-cache" / "snapshot")
    downloaded: list[bool] = []
    monkeypatch.setattr(fingerprint, "local_model_dir",
                        lambda reference: snapshot if downloaded and reference == HUB_ID else None)
    cfg = _cfg(tmp_path / "eval", [HUB_ID], bench_file, "eval.checkpoint_prompt_styles=[chat]")
    load = default_policy_loader(cfg)
    calls: list[int] = []

    def loader(reference):
        assert reference == HUB_ID
        downloaded.append(True)                   # what from_pretrained does for an uncached hub id
        engine, tokenizer = load(str(snapshot))
        original = engine.generate
        engine.generate = lambda p, s, seeds: (calls.append(len(p)), original(p, s, seeds))[1]
        return engine, tokenizer
    return cfg, loader, calls, snapshot, downloaded


def test_a_hub_checkpoint_downloaded_by_its_first_evaluation_is_reused_next_time(tmp_path, bench_file,
                                                                                 monkeypatch, caplog):
    """Before the load a hub id not in the cache is known only by its name; the result must
    record the weights the load fetched, so the next run (which finds them cached) reuses it."""
    from medssr_nemo.models.fingerprint import directory_fingerprint

    cfg, loader, calls, snapshot, _ = _hub_setup(tmp_path, bench_file, monkeypatch)
    summary = run_eval(cfg, policy_loader=loader, progress=False)
    assert calls
    identity = json.loads((tmp_path / "eval" / "tiny-qwen3" / "mine" / "protocol.json").read_text())
    assert identity["checkpoint_weights_sha256"] == directory_fingerprint(snapshot)
    assert summary["checkpoints"][0]["weights_sha256"] == directory_fingerprint(snapshot)
    calls.clear()
    with caplog.at_level(logging.WARNING, logger="medssr_nemo.eval.runner"):
        run_eval(cfg, policy_loader=loader, progress=False)
    assert not calls and "evaluating again" not in caplog.text


def test_a_hub_checkpoint_no_longer_cached_is_loaded_to_compare_its_weights(tmp_path, bench_file,
                                                                            monkeypatch, caplog):
    """Results recorded with the weights' hash, and the hub id no longer in the cache: the run
    fetches the weights to learn their hash instead of declaring them changed; new weights
    behind the same id are still evaluated again."""
    cfg, loader, calls, snapshot, downloaded = _hub_setup(tmp_path, bench_file, monkeypatch)
    run_eval(cfg, policy_loader=loader, progress=False)
    downloaded.clear()                            # the cache was emptied
    calls.clear()
    with caplog.at_level(logging.WARNING, logger="medssr_nemo.eval.runner"):
        run_eval(cfg, policy_loader=loader, progress=False)
    assert downloaded and not calls and "evaluating again" not in caplog.text
    _save(snapshot, seed=5)                        # the hub now serves other weights
    downloaded.clear()
    with caplog.at_level(logging.WARNING, logger="medssr_nemo.eval.runner"):
        run_eval(cfg, policy_loader=loader, progress=False)
    assert calls and "evaluating again: the checkpoint's weights changed" in caplog.text
