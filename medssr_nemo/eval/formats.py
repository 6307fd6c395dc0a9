"""Benchmark file formats: the readers a benchmark defined in config alone can name (the table of
them, ``READERS``, is in ``medssr_nemo.eval.readers``).

Each reader takes a path and returns question records in file order, every one with ``gold``
set; a malformed row is a ``RecordError`` naming the file and the line (or item index).

- ``medssr_json``: the paper's ``test_short_*.json`` (JSON list of ``{id, question, gold}``, the
  options as ``A. ...`` lines at the end of ``question``);
- ``medxpertqa_jsonl``: MedXpertQA's ``{realidx, question, options{A..}, answer_idx}`` lines;
- ``records``: the project's own question-record JSONL or Parquet (``medssr_nemo.records``);
- ``mcq_jsonl``: the simplest user layout, one ``{id, question, options, answer}`` per line, where
  ``options`` is a list (letters follow the order) or an object keyed ``A``, ``B``, ...; the
  question may instead carry the options as ``A. ...`` lines (paper layout) when ``options`` is
  absent; the key is chosen by what the fields hold (``answer_idx``, ``gold``, ``answer``: see
  ``answer_key``), and an answer text must match the keyed option;
- ``rarebench_jsonl``: a RareBench subset file turned into multiple-choice questions
  (``medssr_nemo.eval.rarebench``);
- ``raredis_hub``: RareDis-Sub in its Hugging Face Hub layout (``medssr_nemo.eval.raredis``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from medssr_nemo.records import LETTERS, QuestionRecord, RecordError, read_records, split_question_text

def record_from_row(row: Any, where: str, default_id: str, source: str) -> QuestionRecord:
    """One multiple-choice row in any of the common layouts (see ``mcq_jsonl``) as a record."""
    if not isinstance(row, dict):
        raise RecordError(f"{where}: expected a JSON object, got {type(row).__name__}")
    if "question" not in row:
        raise RecordError(f"{where}: missing field 'question'; expected {{id, question, options, answer}}")
    options = row.get("options")
    try:
        if options is None:
            stem, option_texts = split_question_text(str(row["question"]))
        elif isinstance(options, list):
            stem, option_texts = str(row["question"]).rstrip(), [_text(o) for o in options]
        elif isinstance(options, dict):
            if list(options) != list(LETTERS[: len(options)]):
                raise RecordError(f"'options' keys must be A, B, C, ... in order, got {list(options)}")
            stem, option_texts = str(row["question"]).rstrip(), [_text(o) for o in options.values()]
        else:
            raise RecordError(f"'options' must be a list or an object keyed A, B, ...; got {type(options).__name__}")
        gold = answer_key(row, option_texts)
        extra = {k: v for k, v in row.items() if k not in ("id", "question", "options", "answer", "gold", "answer_idx")}
        return QuestionRecord(id=str(row.get("id") or default_id), question=stem, options=option_texts,
                              gold=gold, source=source, meta=extra)
    except RecordError as err:
        raise RecordError(f"{where}: {err}") from None


_KEY_FIELDS = ("answer_idx", "gold", "answer")   # in order of preference for the letter


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _same_text(a: str, b: str) -> bool:
    return " ".join(a.split()).casefold() == " ".join(b.split()).casefold()


def answer_key(row: dict, option_texts: list[str]) -> str:
    """The gold letter of ``row``, chosen by what its fields hold.

    A field holds a letter when it is one of the options' letters (``answer_idx`` first, then
    ``gold``, then ``answer``); a present ``answer_idx`` or ``gold`` that is not, or the two
    naming different options, is an error. An ``answer`` that is both a letter and another option's text
    (options ``{"A": "D", ...}``, ``"answer": "D"``) is ambiguous without ``answer_idx``. With no
    letter anywhere, an ``answer`` equal to exactly one option's text gives that option. When the
    letter came from another field, an ``answer`` text must equal the keyed option's text.
    """
    letters = LETTERS[: len(option_texts)]
    values = {k: row[k] for k in _KEY_FIELDS if k in row and row[k] is not None}
    if isinstance(values.get("answer_idx"), (int, float)) and not isinstance(values["answer_idx"], bool):
        raise RecordError(f"'answer_idx' holds the number {values['answer_idx']!r}; expected the option's letter "
                          f"({', '.join(letters)})")

    def as_letter(value: Any) -> str | None:
        text = _text(value).strip()
        return text.upper() if len(text) == 1 and text.upper() in letters else None

    def matching_options(value: Any) -> list[str]:
        return [letters[i] for i, o in enumerate(option_texts) if _same_text(o, _text(value))]

    # a present letter field must name an option, and two of them must name the same one: falling
    # back to another field would hide a broken row
    for name in ("answer_idx", "gold"):
        if name in values and as_letter(values[name]) is None:
            raise RecordError(f"'{name}'={values[name]!r} is not one of the option letters {', '.join(letters)}")
    if "answer_idx" in values and "gold" in values and as_letter(values["answer_idx"]) != as_letter(values["gold"]):
        raise RecordError(f"'answer_idx'={values['answer_idx']!r} and 'gold'={values['gold']!r} name different "
                          "options; keep one key")
    key_field = next((k for k in _KEY_FIELDS if k in values and as_letter(values[k]) is not None), None)
    if key_field == "answer":
        others = [m for m in matching_options(values["answer"]) if m != as_letter(values["answer"])]
        if others:
            raise RecordError(f"'answer'={values['answer']!r} is ambiguous: the letter {as_letter(values['answer'])} "
                              f"or the text of option {others[0]}; add 'answer_idx' with the letter")
    if key_field is None:
        matches = matching_options(values["answer"]) if "answer" in values else []
        if len(matches) == 1:
            return matches[0]
        shown = ", ".join(f"{k}={values[k]!r}" for k in values) or "none of them"
        raise RecordError("no answer key: expected 'answer_idx' (or 'gold'/'answer') holding one of the letters "
                          f"{', '.join(letters)}, or 'answer' holding the text of exactly one option; got {shown}")
    key = as_letter(values[key_field])
    assert key is not None
    answer = values.get("answer")
    if key_field != "answer" and answer is not None and as_letter(answer) != key:
        keyed_text = option_texts[letters.index(key)]
        if not _same_text(_text(answer), keyed_text):
            raise RecordError(f"'answer' text {_text(answer)!r} differs from the text of option {key} "
                              f"({keyed_text!r}) that '{key_field}'={values[key_field]!r} names")
    return key


def read_mcq_jsonl(path: Path) -> list[QuestionRecord]:
    """``mcq_jsonl``: one multiple-choice object per line; ids default to ``<file stem>-<line>``."""
    _require(path)
    records = []
    with open(path, encoding="utf-8-sig") as handle:
        for lineno, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise RecordError(f"{path}:{lineno}: not valid JSON ({err.msg})") from None
            records.append(record_from_row(row, f"{path}:{lineno}", f"{path.stem}-{lineno}", path.stem))
    return records


def read_question_records(path: Path) -> list[QuestionRecord]:
    """``records``: question-record JSONL/Parquet; every record must carry a gold key."""
    records = read_records(path)
    for index, record in enumerate(records):
        if record.gold is None:
            raise RecordError(f"{path} record {index} (id {record.id!r}): has no 'gold' answer; "
                              "a benchmark needs the key of every question")
    return records


def _require(path: Path) -> None:
    if not path.exists():
        raise FileNotFoundError(f"benchmark file not found: {path}")
