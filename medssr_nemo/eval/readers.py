"""The benchmark file readers by format name (``eval.custom_benchmarks.<name>.format``), and
``read_benchmark_file``. The formats themselves are described in ``medssr_nemo.eval.formats``.

A table of its own, above every reader's module, so that the readers (``formats``, ``raredis``,
``rarebench``, ``data.eval_files``) never import one another in a cycle.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from medssr_nemo.data.eval_files import read_medxpertqa_file, read_paper_eval_file
from medssr_nemo.eval.formats import read_mcq_jsonl, read_question_records
from medssr_nemo.eval.rarebench import rarebench_questions
from medssr_nemo.eval.raredis import read_raredis_snapshot
from medssr_nemo.records import QuestionRecord

Reader = Callable[[Path], list[QuestionRecord]]

READERS: dict[str, Reader] = {
    "medssr_json": read_paper_eval_file,
    "medxpertqa_jsonl": read_medxpertqa_file,
    "records": read_question_records,
    "mcq_jsonl": read_mcq_jsonl,
    "rarebench_jsonl": rarebench_questions,
    "raredis_hub": read_raredis_snapshot,
}


def read_benchmark_file(path: str | os.PathLike, file_format: str) -> list[QuestionRecord]:
    """Records of ``path`` read as ``file_format`` (one of ``READERS``)."""
    if file_format not in READERS:
        raise ValueError(f"unknown benchmark file format {file_format!r}; supported: {', '.join(READERS)}")
    return READERS[file_format](Path(path))
