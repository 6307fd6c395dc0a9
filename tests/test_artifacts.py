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
