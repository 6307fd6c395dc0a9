"""Every evaluation item under ``<data>/eval``, read once: what training data must never contain.

Question benchmarks (the paper's eight files and MedXpertQA) contribute full question records;
RareBench cases are phenotype lists without question text, so they contribute only their ids.
Files are found by pattern, so a benchmark file added to ``eval/`` is covered without code changes.
"""

from __future__ import annotations

import functools
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from medssr_nemo.artifacts import file_sha256
from medssr_nemo.data.eval_files import eval_dir, read_medxpertqa_file, read_paper_eval_file, read_rarebench_file
from medssr_nemo.records import QuestionRecord


@dataclass
class EvalSuite:
    records: list[QuestionRecord]               # question items with text and options
    case_ids: list[str]                         # items known only by id (RareBench cases)
    file_sha256: dict[str, str] = field(default_factory=dict)  # path relative to eval/ -> sha256

    @property
    def ids(self) -> set[str]:
        return {r.id for r in self.records} | set(self.case_ids)

    def counts(self) -> dict[str, int]:
        """Items per benchmark (``source`` of records; ``rarebench`` for cases)."""
        counts = Counter(r.source for r in self.records)
        if self.case_ids:
            counts["rarebench"] = len(self.case_ids)
        return dict(sorted(counts.items()))


def load_eval_suite(root: str | os.PathLike | None = None) -> EvalSuite:
    """The suite under ``<root>/eval`` (default: the shared data root); cached per directory,
    so every caller in a process shares one parse. Treat the result as read-only."""
    return _load_cached(eval_dir(root).resolve())


@functools.lru_cache(maxsize=4)
def _load_cached(directory: Path) -> EvalSuite:
    if not directory.is_dir():
        raise FileNotFoundError(f"evaluation data directory not found: {directory}")
    paper = sorted((directory / "medssr").glob("test_short_*.json"))
    medxpertqa = sorted((directory / "medxpertqa").glob("*.jsonl"))
    rarebench = sorted((directory / "rarebench").glob("*.jsonl"))
    if not paper and not medxpertqa:
        raise FileNotFoundError(f"no evaluation question files (medssr/test_short_*.json, medxpertqa/*.jsonl) in {directory}")
    records: list[QuestionRecord] = []
    for path in paper:
        records += read_paper_eval_file(path)
    for path in medxpertqa:
        records += read_medxpertqa_file(path)
    case_ids = [case.id for path in rarebench for case in read_rarebench_file(path)]
    hashes = {str(p.relative_to(directory)): file_sha256(p) for p in (*paper, *medxpertqa, *rarebench)}
    return EvalSuite(records=records, case_ids=case_ids, file_sha256=hashes)
