"""Answer a batch of (question, sample) pairs: generate, extract the last valid answer, and
re-decode once, constrained to the option letters, where no answer was given."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Sequence

from medssr_nemo.answers import extract_answer, follows_format
from medssr_nemo.eval.protocol import RECOVERY_SAMPLING, EvalProtocol, RecoveryTokens, recovery_prompt
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


def answer_items(engine: RolloutEngine, items: Sequence[WorkItem], protocol: EvalProtocol,
                 recovery: RecoveryTokens | None) -> list[dict[str, Any]]:
    """One result row per item, in item order (see ``row`` for the fields)."""
    completions = engine.generate([list(i.prompt_ids) for i in items], protocol.sampling(), [i.seed for i in items])
    free = [extract_answer(c.text, i.record.letters) for i, c in zip(items, completions)]
    recovered: dict[int, str] = {}
    if protocol.recovery and recovery is not None:
        recovered = recover_letters(engine, items, completions, [k for k, a in enumerate(free) if a is None], recovery)
    return [row(item, c, free[k], recovered.get(k)) for k, (item, c) in enumerate(zip(items, completions))]


def recover_letters(engine: RolloutEngine, items: Sequence[WorkItem], completions: Sequence[Completion],
                    indices: Sequence[int], recovery: RecoveryTokens) -> dict[int, str]:
    """Greedy one-token re-decode of ``indices``, grouped by option-letter set (one engine call
    per set, since the allowed tokens are a sampling parameter); index -> letter."""
    by_letters: dict[tuple[str, ...], list[int]] = {}
    for k in indices:
        by_letters.setdefault(tuple(items[k].record.letters), []).append(k)
    letters_of: dict[int, str] = {}
    for letters, group in by_letters.items():
        allowed = recovery.allowed_ids(letters)
        sampling = dataclasses.replace(RECOVERY_SAMPLING, allowed_token_ids=allowed)
        prompts = [recovery_prompt(items[k].prompt_ids, completions[k].token_ids, recovery.suffix_ids,
                                   stopped=completions[k].finish_reason == "stop") for k in group]
        outputs = engine.generate(prompts, sampling, [items[k].seed for k in group])
        for k, out in zip(group, outputs):
            token = out.token_ids[0] if out.token_ids else None
            letter = recovery.letter_of_token.get(token) if token is not None else None
            if letter not in letters:
                raise RuntimeError(
                    f"the rollout engine ignored allowed_token_ids: the re-decode of {items[k].record.id!r} "
                    f"gave token {token} ({out.text!r}), allowed were {list(allowed)} for letters {list(letters)}"
                )
            letters_of[k] = letter
    return letters_of


def row(item: WorkItem, completion: Completion, free_answer: str | None, recovered: str | None) -> dict[str, Any]:
    answer = free_answer if free_answer is not None else recovered
    return {
        "benchmark": item.benchmark,
        "id": item.record.id,
        "sample": item.sample,
        "seed": item.seed,
        "gold": item.record.gold,
        "answer": answer,                          # the letter scored (after any re-decode)
        "correct": answer is not None and answer == item.record.gold,
        "free_answer": free_answer,                # extracted from the generation itself
        "recovered": recovered is not None,        # the answer came from the re-decode
        "follows_format": follows_format(completion.text, item.record.letters),
        "finish_reason": completion.finish_reason,
        "num_tokens": len(completion.token_ids),
        "completion": completion.text,
    }
