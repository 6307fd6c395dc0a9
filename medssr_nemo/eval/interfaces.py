"""Benchmark contract: a named set of multiple-choice question records with gold keys."""

from __future__ import annotations

import abc

from medssr_nemo.records import QuestionRecord


class Benchmark(abc.ABC):
    name: str = "benchmark"
    rare: bool = False          # counts in the rare-disease column of reports

    @abc.abstractmethod
    def load(self) -> list[QuestionRecord]:
        """Every item, in file order, each with ``gold`` set; malformed rows raise
        ``RecordError`` naming the file and line."""
