"""Question records: validation, the paper's text layout, atomic JSONL/Parquet round trips."""

from __future__ import annotations

import json

import pytest

from medssr_nemo.records import QuestionRecord, RecordError, read_records, split_question_text, write_records


def _record(**kw):
    base = dict(id="q1", question="Which factor?", options=["VII", "VIII", "IX", "XII"], gold="D")
    return QuestionRecord(**{**base, **kw})


def test_formatted_matches_paper_layout_and_splits_back(shared_data):
    raw = json.loads((shared_data / "eval/medssr/test_short_medqa.json").read_text())[0]
    stem, options = split_question_text(raw["question"])
    record = QuestionRecord(id=raw["id"], question=stem, options=options, gold=raw["gold"])
    assert record.formatted() == raw["question"].rstrip()
    assert record.letters == ["A", "B", "C", "D"]


@pytest.mark.parametrize("kwargs, message", [
    (dict(options=["only one"]), "needs 2..26 options"),
    (dict(gold="E"), "gold='E' is not one of the option letters"),
    (dict(label="Z", label_source="pseudo"), "label='Z'"),
    (dict(label_source="silver"), "label_source='silver'"),
    (dict(id=""), "non-empty"),
])
def test_invalid_records_are_refused(kwargs, message):
    with pytest.raises(RecordError, match=message):
        _record(**kwargs)


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_round_trip(tmp_path, suffix):
    records = [_record(), _record(id="q2", label="A", label_source="pseudo", agreement=0.75,
                                  vote_counts={"A": 3, "B": 1}, rare=True, knowledge_ids=["OMIM:1"], meta={"k": 1})]
    path = write_records(records, tmp_path / f"out{suffix}")
    assert read_records(path) == records
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]   # no temp file left behind


def test_bad_line_names_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    good = json.dumps(_record().to_dict())
    path.write_text(good + "\n{not json\n")
    with pytest.raises(RecordError, match=r"bad\.jsonl:2: not valid JSON"):
        read_records(path)
    path.write_text(json.dumps({**_record().to_dict(), "colour": "red"}) + "\n")
    with pytest.raises(RecordError, match=r"bad\.jsonl:1: unknown record field\(s\) \['colour'\]"):
        read_records(path)


def test_split_question_text_requires_lettered_options():
    with pytest.raises(RecordError, match="cannot find option lines"):
        split_question_text("A question without options")
