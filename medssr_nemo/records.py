"""The one question record shared by synthesis, labelling, training and evaluation.

A record is a multiple-choice question: a stem and ordered options (letters A, B, ... follow the
order). It may carry a gold answer (human key or knowledge-base key), a training label with its
source (``gold`` or ``pseudo``), the pseudo-label vote and agreement, and provenance.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Literal

from medssr_nemo.artifacts import atomic_path, write_jsonl_atomic
from medssr_nemo.jsonl import RecordError, iter_json_objects

__all__ = ["LETTERS", "QuestionRecord", "RecordError", "is_kg_question", "iter_records", "read_records",
           "split_question_text", "write_records"]

LETTERS = string.ascii_uppercase
LabelSource = Literal["gold", "pseudo"]
MIN_OPTIONS, MAX_OPTIONS = 2, 26


@dataclass
class QuestionRecord:
    """One multiple-choice question and everything the pipeline learns about it."""

    id: str
    question: str                       # the stem, without the option lines
    options: list[str]                  # option texts, in letter order (A, B, ...)
    gold: str | None = None             # the known key (human or knowledge base), if any
    label: str | None = None            # the training label (gold key or pseudo label)
    label_source: LabelSource | None = None
    agreement: float | None = None      # share of votes behind a pseudo label
    vote_counts: dict[str, int] = field(default_factory=dict)  # letter -> votes
    source: str = ""                    # dataset or generator that produced it
    knowledge_ids: list[str] = field(default_factory=list)
    rare: bool = False                  # rare-disease knowledge injected / rare-disease item
    category: str | None = None         # specialty or disease group
    question_type: str | None = None    # e.g. diagnosis, gene, inheritance
    difficulty: str | None = None       # e.g. easy, medium, hard
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise RecordError(f"record id must be a non-empty string, got {self.id!r}")
        if not (MIN_OPTIONS <= len(self.options) <= MAX_OPTIONS):
            raise RecordError(
                f"record {self.id}: needs {MIN_OPTIONS}..{MAX_OPTIONS} options, got {len(self.options)}"
            )
        for name in ("gold", "label"):
            letter = getattr(self, name)
            if letter is not None and letter not in self.letters:
                raise RecordError(
                    f"record {self.id}: {name}={letter!r} is not one of the option letters {self.letters}"
                )
        if self.label_source not in (None, "gold", "pseudo"):
            raise RecordError(
                f"record {self.id}: label_source={self.label_source!r}; allowed: 'gold', 'pseudo' or null"
            )

    @property
    def letters(self) -> list[str]:
        """The valid answer letters of this question, in order."""
        return list(LETTERS[: len(self.options)])

    def formatted(self) -> str:
        """Stem followed by ``A. option`` lines: the layout of the paper's evaluation files."""
        lines = [self.question.rstrip()]
        lines += [f"{letter}. {text}" for letter, text in zip(self.letters, self.options)]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, row: dict[str, Any], where: str = "") -> "QuestionRecord":
        """Build a record from a stored row; ``where`` (file:line) is named in errors."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(row) - known)
        prefix = f"{where}: " if where else ""
        if unknown:
            raise RecordError(f"{prefix}unknown record field(s) {unknown}; known fields: {sorted(known)}")
        missing = [k for k in ("id", "question", "options") if k not in row]
        if missing:
            raise RecordError(f"{prefix}missing record field(s) {missing}")
        try:
            return cls(**row)
        except (RecordError, TypeError) as err:
            raise RecordError(f"{prefix}{err}") from None


_OPTION_LINE = re.compile(r"^\s*([A-Z])[.)]\s+(.*\S)\s*$")


def split_question_text(text: str) -> tuple[str, list[str]]:
    """Split ``stem\\nA. x\\nB. y`` (the paper's file layout) into stem and option texts.

    Options are the trailing run of lines lettered A, B, C, ... in order.
    """
    lines = text.rstrip().split("\n")
    options: list[str] = []
    idx = len(lines)
    while idx > 0:
        match = _OPTION_LINE.match(lines[idx - 1])
        if not match:
            break
        options.insert(0, match.group(2))
        idx -= 1
        if match.group(1) == "A":
            break
    expected = list(LETTERS[: len(options)])
    found = [(_OPTION_LINE.match(line) or [None, None])[1] for line in lines[idx:]]
    if len(options) < MIN_OPTIONS or found != expected:
        raise RecordError(f"cannot find option lines 'A. ...', 'B. ...' at the end of: {text[-200:]!r}")
    return "\n".join(lines[:idx]).rstrip(), options


def is_kg_question(record: QuestionRecord) -> bool:
    """Generated from the knowledge base, whose answer key is known by construction."""
    return record.meta.get("origin") == "knowledge" and record.gold is not None


def write_records(records: Iterable[QuestionRecord], path: str | os.PathLike) -> Path:
    """Write records atomically (temp file + rename): JSONL, or Parquet for ``.parquet``."""
    path = Path(path)
    rows = [r.to_dict() for r in records]
    if path.suffix != ".parquet":
        return write_jsonl_atomic(path, rows)
    import datasets

    encoded = [{**r, "vote_counts": json.dumps(r["vote_counts"], sort_keys=True),
                "meta": json.dumps(r["meta"], sort_keys=True)} for r in rows]
    with atomic_path(path) as tmp:
        datasets.Dataset.from_list(encoded).to_parquet(str(tmp))
    return path


def iter_records(path: str | os.PathLike) -> Iterator[QuestionRecord]:
    """Read records from JSONL or Parquet; a bad row is an error naming file and line."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"question records file not found: {path}")
    if path.suffix == ".parquet":
        import datasets

        for i, row in enumerate(datasets.Dataset.from_parquet(str(path))):
            row = {**row, "vote_counts": json.loads(row["vote_counts"] or "{}"),
                   "meta": json.loads(row["meta"] or "{}")}
            yield QuestionRecord.from_dict(row, where=f"{path} row {i}")
        return
    for where, row in iter_json_objects(path):
        yield QuestionRecord.from_dict(row, where=where)


def read_records(path: str | os.PathLike) -> list[QuestionRecord]:
    return list(iter_records(path))
