"""Training questions for GRPO: load, keep the labelled ones, encode prompts, and hand them out
in a seeded order whose position is part of the checkpoint (so a resumed run sees the same
questions in the same order)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from medssr_nemo.data.real import load_real_pools
from medssr_nemo.prompts import PromptStyle, encode_prompt, render_prompt
from medssr_nemo.records import QuestionRecord, read_records


@dataclass
class TrainingQuestion:
    record: QuestionRecord
    prompt: str
    prompt_ids: list[int]


@dataclass
class DataReport:
    loaded: int
    without_label: int
    too_long: int

    @property
    def kept(self) -> int:
        return self.loaded - self.without_label - self.too_long


def load_training_records(spec: str) -> list[QuestionRecord]:
    """``spec`` is a JSONL/Parquet file of question records, or ``real:<pool>[,<pool>...]`` for
    the decontaminated human-annotated pools (see ``medssr data real``)."""
    if spec.startswith("real:"):
        pools = [p for p in spec[len("real:"):].split(",") if p]
        records, _report = load_real_pools(pools)
        return records
    return read_records(spec)


def has_training_key(record: QuestionRecord) -> bool:
    return record.label is not None or record.gold is not None


def prepare_questions(records: list[QuestionRecord], tokenizer: Any, style: PromptStyle,
                      max_prompt_tokens: int) -> tuple[list[TrainingQuestion], DataReport]:
    questions: list[TrainingQuestion] = []
    without_label = too_long = 0
    for record in records:
        if not has_training_key(record):
            without_label += 1
            continue
        ids = encode_prompt(record, tokenizer, style)
        if len(ids) > max_prompt_tokens:
            too_long += 1
            continue
        questions.append(TrainingQuestion(record, render_prompt(record, tokenizer, style), ids))
    return questions, DataReport(len(records), without_label, too_long)


class QuestionSampler:
    """Epochs of a seeded permutation; ``state()``/``restore()`` carry the position."""

    def __init__(self, size: int, seed: int, shuffle: bool = True) -> None:
        if size == 0:
            raise ValueError("no training questions left (none had a label, or all prompts were too long)")
        self.size, self.seed, self.shuffle = size, seed, shuffle
        self.epoch, self.position = 0, 0
        self._order = self._permutation(0)

    def _permutation(self, epoch: int) -> list[int]:
        order = list(range(self.size))
        if self.shuffle:
            random.Random(f"{self.seed}:{epoch}").shuffle(order)
        return order

    def take(self, count: int) -> list[int]:
        indices = []
        while len(indices) < count:
            if self.position == self.size:
                self.epoch, self.position = self.epoch + 1, 0
                self._order = self._permutation(self.epoch)
            indices.append(self._order[self.position])
            self.position += 1
        return indices

    def state(self) -> dict[str, int]:
        return {"epoch": self.epoch, "position": self.position}

    def restore(self, state: dict[str, int]) -> None:
        self.epoch, self.position = int(state["epoch"]), int(state["position"])
        self._order = self._permutation(self.epoch)
