"""Answer a batch of (question, sample) pairs: generate, read the answer with the shared reader,
and re-decode once, constrained to the benchmark's letters, where no answer was read."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from medssr_nemo.answers import AnswerReader, follows_format
from medssr_nemo.eval.protocol import EvalProtocol
from medssr_nemo.eval.redecode import Redecoder
from medssr_nemo.records import QuestionRecord
from medssr_nemo.rollout.interfaces import Completion, RolloutEngine


@dataclass(frozen=True)
class WorkItem:
    """One sample of one question: its prompt tokens and its own seed."""

    benchmark: str
    record: QuestionRecord
    prompt_ids: tuple[int, ...]
    sample: int
    seed: int
    # letters the re-decode may pick: the benchmark's (every gold letter of its file, as the
    # paper's script); empty = the question's own letters
    redecode_letters: tuple[str, ...] = ()

    def allowed_letters(self) -> tuple[str, ...]:
        return self.redecode_letters or tuple(self.record.letters)


@dataclass(frozen=True)
class Redecoded:
    letter: str | None      # the answer read from the re-decode, or None (still unknown)
    text: str               # what the re-decode generated


def answer_items(engine: RolloutEngine, items: Sequence[WorkItem], protocol: EvalProtocol,
                 redecoder: Redecoder | None, model_name: str | None = None) -> list[dict[str, Any]]:
    """One result row per item, in item order (see ``row`` for the fields). Answers are read
    in ``protocol.answer_extraction`` mode (``model_name`` for the paper's gemma-only rule)."""
    completions = engine.generate([list(i.prompt_ids) for i in items], protocol.sampling(), [i.seed for i in items])
    reader = AnswerReader(protocol.answer_extraction, model_name)
    free = [reader(c.text, i.record.letters) for i, c in zip(items, completions)]
    redecoded: dict[int, Redecoded] = {}
    if protocol.recovery and redecoder is not None:
        redecoded = redecode(engine, items, completions, [k for k, a in enumerate(free) if a is None], redecoder)
    return [row(item, c, free[k], redecoded.get(k)) for k, (item, c) in enumerate(zip(items, completions))]


def redecode(engine: RolloutEngine, items: Sequence[WorkItem], completions: Sequence[Completion],
             indices: Sequence[int], redecoder: Redecoder) -> dict[int, Redecoded]:
    """Greedy constrained re-decode of ``indices``, one engine call per allowed-letter set (the
    allowed tokens are a sampling parameter); index -> what it gave."""
    by_letters: dict[tuple[str, ...], list[int]] = {}
    for k in indices:
        by_letters.setdefault(items[k].allowed_letters(), []).append(k)
    results: dict[int, Redecoded] = {}
    for letters, group in by_letters.items():
        sampling = redecoder.sampling(letters)
        allowed = set(sampling.allowed_token_ids or ())
        prompts = [redecoder.prompt_ids(items[k].record, completions[k].text) for k in group]
        outputs = engine.generate(prompts, sampling, [items[k].seed for k in group])
        for k, out in zip(group, outputs):
            if not out.token_ids or any(t not in allowed for t in out.token_ids):
                raise RuntimeError(
                    f"the rollout engine ignored allowed_token_ids: the re-decode of {items[k].record.id!r} "
                    f"gave tokens {out.token_ids} ({out.text!r}), allowed were {sorted(allowed)} for letters {list(letters)}"
                )
            results[k] = Redecoded(redecoder.read(out.text, letters), out.text)
    return results


def row(item: WorkItem, completion: Completion, free_answer: str | None, redecoded: Redecoded | None) -> dict[str, Any]:
    recovered = redecoded.letter if redecoded is not None else None
    answer = free_answer if free_answer is not None else recovered
    return {
        "benchmark": item.benchmark,
        "id": item.record.id,
        "sample": item.sample,
        "seed": item.seed,
        "gold": item.record.gold,
        "answer": answer,                          # the letter scored (after any re-decode)
        "correct": answer is not None and answer == item.record.gold,
        "free_answer": free_answer,                # read from the generation itself
        "recovered": recovered is not None,        # the answer came from the re-decode
        "redecode_text": None if redecoded is None else redecoded.text,
        "follows_format": follows_format(completion.text, item.record.letters),
        "finish_reason": completion.finish_reason,
        "num_tokens": len(completion.token_ids),
        "completion": completion.text,
    }
