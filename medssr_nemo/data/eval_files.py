"""Readers of the raw evaluation files in ``<data>/eval``: the one parser of each layout.

Both the benchmark plugins (scoring) and decontamination (filtering training data) read the
evaluation items through these functions, so the two can never disagree on what an item is.

Layouts (see ``data/README.md``):

- the paper's ``eval/medssr/test_short_<name>.json``: a JSON list of ``{id, question, gold, ...}``
  where ``question`` is the stem followed by ``A. ...`` option lines;
- MedXpertQA ``eval/medxpertqa/medxpertqa_{r,u}_test.jsonl``: ``{realidx, question, options{A..J},
  answer_idx, answer}``, where ``question`` repeats the options after ``Answer Choices:``;
- RareBench ``eval/rarebench/<SUBSET>.jsonl``: ``{Phenotype: [HPO ids], RareDisease: [ids],
  Department}``, phenotype-list cases rather than questions (``RareBenchCase``).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medssr_nemo.data.root import data_root
from medssr_nemo.jsonl import iter_json_objects, read_json_document
from medssr_nemo.records import LETTERS, QuestionRecord, RecordError, split_question_text

# The eight files published with the MedSSR paper, by benchmark name (file test_short_<name>.json).
PAPER_BENCHMARKS = ("medqa", "medmcqa", "pubmedqa", "bioasq", "mmlu", "lancet", "nejm", "medbullets")
MEDXPERTQA_SPLITS = {"r": "reasoning", "u": "understanding"}
RAREBENCH_SUBSETS = ("RAMEDIS", "MME", "HMS", "LIRICAL", "PUMCH_ADM")

# 38 MedQA items of the paper's file end with a stray line holding only a quote mark after the
# option lines; it is an artefact of the upstream export, not part of the question.
_STRAY_TRAILING_LINE = re.compile(r'\n[\s"\'`]*$')
_ANSWER_CHOICES = re.compile(r"\n\s*Answer Choices:")
_PAPER_CORE_FIELDS = ("id", "question", "gold")


def eval_dir(root: str | os.PathLike | None = None) -> Path:
    """``<data>/eval``: under ``root`` when given, else under ``medssr_nemo.data.root.data_root()``."""
    return Path(root) / "eval" if root is not None else data_root() / "eval"


def paper_eval_path(name: str, root: str | os.PathLike | None = None) -> Path:
    if name not in PAPER_BENCHMARKS:
        raise ValueError(f"unknown paper benchmark {name!r}; known: {', '.join(PAPER_BENCHMARKS)}")
    return eval_dir(root) / "medssr" / f"test_short_{name}.json"


def medxpertqa_paths(root: str | os.PathLike | None = None) -> list[Path]:
    return [eval_dir(root) / "medxpertqa" / f"medxpertqa_{split}_test.jsonl" for split in MEDXPERTQA_SPLITS]


def rarebench_path(subset: str, root: str | os.PathLike | None = None) -> Path:
    if subset not in RAREBENCH_SUBSETS:
        raise ValueError(f"unknown RareBench subset {subset!r}; known: {', '.join(RAREBENCH_SUBSETS)}")
    return eval_dir(root) / "rarebench" / f"{subset}.jsonl"


def _require(path: Path) -> None:
    if not path.exists():
        raise FileNotFoundError(f"evaluation file not found: {path}")


def read_paper_eval_file(path: str | os.PathLike) -> list[QuestionRecord]:
    """Records of one ``test_short_<name>.json`` file, in file order, each with ``gold`` set.

    ``source`` is the benchmark name from the file name (``medqa``, ``lancet``, ...); the
    remaining fields (``long``, Lancet/NEJM extras) are kept in ``meta``. A malformed item raises ``RecordError`` naming the
    file and the item's index.
    """
    path = Path(path)
    _require(path)
    items = read_json_document(path, list, "a JSON list of question objects")
    source = path.stem.removeprefix("test_short_")  # the file's own "name" differs in case (Lancet)
    records = []
    for index, item in enumerate(items):
        where = f"{path} item {index}"
        if not isinstance(item, dict):
            raise RecordError(f"{where}: expected an object, got {type(item).__name__}")
        missing = [k for k in ("id", "question", "gold") if k not in item]
        if missing:
            raise RecordError(f"{where}: missing field(s) {missing}; expected {{id, question, gold, ...}}")
        text = _STRAY_TRAILING_LINE.sub("", str(item["question"]).rstrip())
        try:
            stem, options = split_question_text(text)
            record = QuestionRecord(
                id=str(item["id"]), question=stem, options=options, gold=str(item["gold"]).strip(),
                source=source,
                meta={k: v for k, v in item.items() if k not in _PAPER_CORE_FIELDS},
            )
        except RecordError as err:
            raise RecordError(f"{where} (id {item['id']!r}): {err}") from None
        records.append(record)
    return records


def read_medxpertqa_file(path: str | os.PathLike) -> list[QuestionRecord]:
    """Records of one MedXpertQA JSONL file; ids are ``medxpertqa-<realidx>`` (unique across
    both splits), the stem is the question text before ``Answer Choices:``, options come from
    the ``options`` dict in letter order. ``meta`` holds the split and the answer text."""
    path = Path(path)
    _require(path)
    split_code = path.stem.removeprefix("medxpertqa_").removesuffix("_test")
    split = MEDXPERTQA_SPLITS.get(split_code, split_code)
    records = []
    for where, row in iter_json_objects(path):
        missing = [k for k in ("realidx", "question", "options", "answer_idx") if k not in row]
        if missing:
            raise RecordError(f"{where}: missing field(s) {missing}; expected "
                              "{realidx, question, options{A..}, answer_idx, answer}")
        options = row["options"]
        if not isinstance(options, dict) or list(options) != list(LETTERS[: len(options)]):
            raise RecordError(f"{where}: 'options' must be an object keyed A, B, C, ... in order, "
                              f"got keys {list(options) if isinstance(options, dict) else options!r}")
        stem = _ANSWER_CHOICES.split(str(row["question"]), maxsplit=1)[0].rstrip()
        try:
            record = QuestionRecord(
                id=f"medxpertqa-{row['realidx']}", question=stem,
                options=[str(v) for v in options.values()], gold=str(row["answer_idx"]).strip(),
                source="medxpertqa", meta={"split": split, "answer": row.get("answer")},
            )
        except RecordError as err:
            raise RecordError(f"{where}: {err}") from None
        records.append(record)
    return records


@dataclass
class RareBenchCase:
    """One RareBench case: the patient's phenotypes and the confirmed rare disease(s)."""

    id: str                             # rarebench-<SUBSET>-<0-based line index among cases>
    subset: str
    phenotypes: list[str]               # HPO ids
    diseases: list[str]                 # OMIM / ORPHA / CCRD ids
    department: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)


def read_rarebench_file(path: str | os.PathLike) -> list[RareBenchCase]:
    """Cases of one RareBench subset file; ids count non-empty lines from 0 in file order."""
    path = Path(path)
    _require(path)
    subset = path.stem
    cases = []
    for where, row in iter_json_objects(path, encoding="utf-8-sig"):
        phenotypes, diseases = row.get("Phenotype"), row.get("RareDisease")
        if not isinstance(phenotypes, list) or not isinstance(diseases, list) or not diseases:
            raise RecordError(f"{where}: expected {{Phenotype: [HPO ids], RareDisease: [ids, ...], "
                              "Department}} with a non-empty RareDisease list")
        cases.append(RareBenchCase(
            id=f"rarebench-{subset}-{len(cases)}", subset=subset,
            phenotypes=[str(p) for p in phenotypes], diseases=[str(d) for d in diseases],
            department=row.get("Department"),
        ))
    return cases
