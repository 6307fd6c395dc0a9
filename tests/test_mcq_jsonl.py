"""The ``mcq_jsonl`` reader: the gold letter is chosen by what the fields hold, an answer text
must agree with the keyed option, and placeholder options are counted in the load report.

On main before this change the reader took the first of answer/gold/answer_idx holding one
character: an option text of one character was read as the key (wrong key, no warning), and a
text such as "0" failed the whole file; these tests fail there.
"""

from __future__ import annotations

import json

import pytest

from medssr_nemo.eval.benchmarks import get_benchmark, load_report
from medssr_nemo.eval.formats import read_mcq_jsonl
from medssr_nemo.records import RecordError


def _write(tmp_path, rows):
    path = tmp_path / "bench.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_answer_idx_wins_over_a_one_character_option_text(tmp_path):
    path = _write(tmp_path, [
        {"question": "Which vitamin?", "options": {"A": "D", "B": "K", "C": "C", "D": "E"}, "answer_idx": "A", "answer": "D"},
        {"question": "How many?", "options": {"A": "5", "B": "7", "C": "9"}, "answer_idx": "B", "answer": "7"},
    ])
    assert [r.gold for r in read_mcq_jsonl(path)] == ["A", "B"]


def test_an_answer_text_such_as_zero_is_a_text_not_a_key(tmp_path):
    path = _write(tmp_path, [{"question": "Count?", "options": {"A": "0", "B": "1"}, "answer_idx": "A", "answer": "0"}])
    assert read_mcq_jsonl(path)[0].gold == "A"


def test_an_answer_text_alone_picks_the_option_it_equals(tmp_path):
    path = _write(tmp_path, [{"question": "Drug?", "options": ["Aspirin", "Heparin"], "answer": "Heparin"}])
    assert read_mcq_jsonl(path)[0].gold == "B"


def test_a_plain_letter_answer_still_works(tmp_path):
    path = _write(tmp_path, [{"question": "Q?", "options": ["x", "y"], "answer": "B"},
                             {"question": "Q?", "options": ["x", "y"], "gold": "a"}])
    assert [r.gold for r in read_mcq_jsonl(path)] == ["B", "A"]


def test_a_disagreeing_answer_text_is_an_error_naming_file_and_line(tmp_path):
    path = _write(tmp_path, [
        {"question": "Q?", "options": {"A": "Aspirin", "B": "Heparin"}, "answer_idx": "A", "answer": "Aspirin"},
        {"question": "Q?", "options": {"A": "Aspirin", "B": "Heparin"}, "answer_idx": "A", "answer": "Heparin"},
    ])
    with pytest.raises(RecordError, match=rf"{path}:2: 'answer' text 'Heparin' differs from the text of option A"):
        read_mcq_jsonl(path)


def test_a_letter_that_is_also_another_options_text_is_ambiguous(tmp_path):
    path = _write(tmp_path, [{"question": "Vitamin?", "options": {"A": "D", "B": "K", "C": "C", "D": "E"}, "answer": "D"}])
    with pytest.raises(RecordError, match=rf"{path}:1: 'answer'='D' is ambiguous.*add 'answer_idx'"):
        read_mcq_jsonl(path)


@pytest.mark.parametrize("field", ["answer_idx", "gold"])
def test_a_letter_field_that_is_not_an_options_letter_is_an_error_naming_file_and_line(tmp_path, field):
    """A present key that names no option is a broken row, not a cue to fall back to the text."""
    path = _write(tmp_path, [
        {"question": "Q?", "options": {"A": "Aspirin", "B": "Heparin"}, field: "B", "answer": "Heparin"},
        {"question": "Q?", "options": {"A": "Aspirin", "B": "Heparin"}, field: "E", "answer": "Heparin"},
    ])
    with pytest.raises(RecordError, match=rf"{path}:2: '{field}'='E' is not one of the option letters A, B"):
        read_mcq_jsonl(path)


def test_disagreeing_answer_idx_and_gold_are_an_error_naming_file_and_line(tmp_path):
    path = _write(tmp_path, [
        {"question": "Q?", "options": ["x", "y", "z"], "answer_idx": "C", "gold": "c"},
        {"question": "Q?", "options": ["x", "y", "z"], "answer_idx": "A", "gold": "B"},
    ])
    with pytest.raises(RecordError, match=rf"{path}:2: 'answer_idx'='A' and 'gold'='B' name different options"):
        read_mcq_jsonl(path)


def test_a_numeric_answer_idx_names_what_is_expected(tmp_path):
    path = _write(tmp_path, [{"question": "Q?", "options": ["x", "y"], "answer_idx": 0}])
    with pytest.raises(RecordError, match=rf"{path}:1: 'answer_idx' holds the number 0; expected the option's letter"):
        read_mcq_jsonl(path)


def test_placeholder_options_are_counted_in_the_load_report(tmp_path):
    path = _write(tmp_path, [
        {"question": "Q1?", "options": {"A": "x", "B": "y", "C": "n/a", "D": ""}, "answer_idx": "A"},
        {"question": "Q2?", "options": {"A": "x", "B": "y", "C": None, "D": "z"}, "answer_idx": "B"},
        {"question": "Q3?", "options": {"A": "x", "B": "y", "C": "w", "D": "z"}, "answer_idx": "C"},
    ])
    records = get_benchmark("mine", {"mine": {"path": str(path), "format": "mcq_jsonl"}}).load()
    assert load_report(records) == {"questions": 3, "placeholder_options": 3, "questions_with_placeholder_options": 2}
