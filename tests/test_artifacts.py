"""The one artifacts module: atomic writes, fingerprints, cards and the is-finished check."""

from __future__ import annotations

import hashlib
import json

import pytest

from medssr_nemo import artifacts


def test_fingerprint_ignores_key_order_and_matches_sha256_of_canonical_json():
    a = artifacts.fingerprint({"b": 1, "a": [1, 2]})
    assert a == artifacts.fingerprint({"a": [1, 2], "b": 1})
    assert a == hashlib.sha256(b'{"a": [1, 2], "b": 1}').hexdigest()
    assert a != artifacts.fingerprint({"a": [2, 1], "b": 1})


def test_json_and_jsonl_writes_are_canonical_utf8(tmp_path):
    path = artifacts.write_json_atomic(tmp_path / "sub" / "x.json", {"z": "é", "a": 1})
    assert path.read_text(encoding="utf-8") == '{\n  "a": 1,\n  "z": "é"\n}\n'
    rows = artifacts.write_jsonl_atomic(tmp_path / "r.jsonl", [{"b": 2, "a": 1}, {"c": "ü"}])
    assert rows.read_text(encoding="utf-8") == '{"a": 1, "b": 2}\n{"c": "ü"}\n'
    assert artifacts.read_json(path) == {"a": 1, "z": "é"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.jsonl", "sub"]  # no temp files left


def test_a_failed_write_leaves_the_old_file_and_no_temp_file(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with artifacts.atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_atomic_directory_replaces_the_old_one_only_on_success(tmp_path):
    final = tmp_path / "model"
    with artifacts.atomic_directory(final) as tmp:
        (tmp / "a").write_text("1")
    with pytest.raises(ValueError):
        with artifacts.atomic_directory(final) as tmp:
            (tmp / "b").write_text("2")
            raise ValueError("interrupted")
    assert sorted(p.name for p in final.iterdir()) == ["a"]
    with artifacts.atomic_directory(final) as tmp:
        (tmp / "c").write_text("3")
    assert sorted(p.name for p in final.iterdir()) == ["c"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_is_finished_needs_the_same_fingerprint_and_untouched_records(tmp_path):
    records, card = tmp_path / "x.jsonl", artifacts.card_path(tmp_path, "x")
    artifacts.write_jsonl_atomic(records, [{"id": "q1"}])
    fp = artifacts.fingerprint({"config": 1})
    assert not artifacts.is_finished(card, records, fp)            # no card yet
    artifacts.write_json_atomic(card, artifacts.make_card("medssr test", fp, records, outputs={"extra": "y"},
                                                          counts={"n": 1}))
    written = json.loads(card.read_text())
    assert written["outputs"] == {"records": "x.jsonl", "records_sha256": artifacts.file_sha256(records),
                                  "extra": "y"}
    assert written["command"] == "medssr test" and written["counts"] == {"n": 1}
    assert artifacts.is_finished(card, records, fp)
    assert not artifacts.is_finished(card, records, artifacts.fingerprint({"config": 2}))
    records.write_text('{"id": "q2"}\n')                            # edited after the card
    assert not artifacts.is_finished(card, records, fp)
    card.write_text("{torn")
    assert artifacts.read_card(card) is None and not artifacts.is_finished(card, records, fp)


def test_a_durable_log_reads_back_its_rows_and_cuts_a_torn_last_line(tmp_path, monkeypatch):
    synced = []
    real_fsync = artifacts.os.fsync
    monkeypatch.setattr(artifacts.os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    log = tmp_path / "sub" / "log.jsonl"
    artifacts.append_jsonl_durable(log, [{"b": 1, "a": "é"}, {"c": 2}])
    artifacts.append_jsonl_durable(log, [])                      # nothing to write: no fsync either
    assert len(synced) == 1
    with open(log, "a", encoding="utf-8") as handle:
        handle.write('{"c": 3, "d')                              # what a kill mid-write leaves
    assert artifacts.read_jsonl_log(log, remedy="x", repair=False) == [{"a": "é", "b": 1}, {"c": 2}]
    assert log.read_text(encoding="utf-8").endswith('{"c": 3, "d')   # a plain read leaves the file
    assert artifacts.read_jsonl_log(log, remedy="x") == [{"a": "é", "b": 1}, {"c": 2}]
    artifacts.append_jsonl_durable(log, [{"e": 4}])              # starts on a clean line
    assert log.read_text(encoding="utf-8") == '{"a": "é", "b": 1}\n{"c": 2}\n{"e": 4}\n'
    assert artifacts.read_jsonl_log(tmp_path / "none.jsonl", remedy="x") == []


def test_a_bad_complete_line_in_a_durable_log_is_an_error_naming_file_and_line(tmp_path):
    log = tmp_path / "log.jsonl"
    log.write_text('{"a": 1}\nnot json\n{"a": 2}\n')
    with pytest.raises(artifacts.CorruptLogError, match=rf"{log}:2: not a JSON line .*; delete it"):
        artifacts.read_jsonl_log(log, remedy="delete it")


def test_the_training_metrics_log_resumes_past_a_torn_last_line(tmp_path):
    from medssr_nemo.grpo.metrics_log import MetricsLogger, read_metrics

    logger = MetricsLogger(tmp_path, tensorboard=False)
    for step in (1, 2, 3):
        logger.log(step, {"loss": float(step), "bad": float("nan")})
    with open(tmp_path / "metrics.jsonl", "a") as handle:
        handle.write('{"step": 4, "lo')                         # killed while logging step 4
    assert [m["step"] for m in read_metrics(tmp_path)] == [1, 2, 3]
    logger.truncate_after(2)                                     # resumed from the step-2 checkpoint
    logger.log(3, {"loss": 30.0})
    assert [(m["step"], m["loss"]) for m in read_metrics(tmp_path)] == [(1, 1.0), (2, 2.0), (3, 30.0)]
    assert read_metrics(tmp_path)[0]["bad"] is None
