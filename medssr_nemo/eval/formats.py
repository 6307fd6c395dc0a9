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
  absent; the answer field may also be called ``gold`` or ``answer_idx``;
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
    answer = next((row[k] for k in ("answer", "gold", "answer_idx") if isinstance(row.get(k), str)
                   and len(row[k].strip()) == 1), None)
    if answer is None:
        raise RecordError(f"{where}: no answer letter; expected one of the fields 'answer', 'gold' "
                          "or 'answer_idx' holding a single letter")
    options = row.get("options")
    try:
        if options is None:
            stem, option_texts = split_question_text(str(row["question"]))
        elif isinstance(options, list):
            stem, option_texts = str(row["question"]).rstrip(), [str(o) for o in options]
        elif isinstance(options, dict):
            if list(options) != list(LETTERS[: len(options)]):
                raise RecordError(f"'options' keys must be A, B, C, ... in order, got {list(options)}")
            stem, option_texts = str(row["question"]).rstrip(), [str(o) for o in options.values()]
        else:
            raise RecordError(f"'options' must be a list or an object keyed A, B, ...; got {type(options).__name__}")
        extra = {k: v for k, v in row.items() if k not in ("id", "question", "options", "answer", "gold", "answer_idx")}
        return QuestionRecord(id=str(row.get("id") or default_id), question=stem, options=option_texts,
                              gold=answer.strip().upper(), source=source, meta=extra)
    except RecordError as err:
        raise RecordError(f"{where}: {err}") from None


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
