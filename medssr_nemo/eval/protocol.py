"""The evaluation protocol: sampling settings, per-sample seeds and the constrained re-decode.

Paper protocol (tdlhl/MedSSR ``vllm_logitsbias_multi.py``): sample each question ``num_samples``
times (temperature 0.6, top-p 0.95, top-k 20, 2048 new tokens); take the last ``The answer is X``
(``medssr_nemo.answers.extract_answer``); an output with no valid answer is re-decoded once,
greedily, with the next token restricted to the question's option letters. Differences from the
paper's script, on purpose: the re-decode continues the same assistant turn (prompt + completion +
``RECOVERY_SUFFIX``) instead of opening a new user turn, and the allowed letters are the
question's own options rather than every gold letter seen in the file.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any, Sequence

from medssr_nemo.prompts import RECOVERY_SUFFIX
from medssr_nemo.rollout.interfaces import SamplingParams


@dataclass(frozen=True)
class EvalProtocol:
    """Everything that decides an evaluation's generations (stored with the results, so a resumed
    run can refuse to mix settings)."""

    prompt_style: str = "chat"
    temperature: float = 0.6
    top_p: float = 0.95
    top_k: int = 20
    max_new_tokens: int = 2048
    num_samples: int = 4
    recovery: bool = True
    seed: int = 0

    @classmethod
    def from_config(cls, eval_cfg: Any, model_prompt_style: str) -> "EvalProtocol":
        """From the ``eval`` config section; ``greedy`` means temperature 0 and one sample."""
        greedy = bool(eval_cfg.greedy)
        return cls(
            prompt_style=eval_cfg.prompt_style or model_prompt_style,
            temperature=0.0 if greedy else float(eval_cfg.temperature),
            top_p=float(eval_cfg.top_p), top_k=int(eval_cfg.top_k),
            max_new_tokens=int(eval_cfg.max_new_tokens),
            num_samples=1 if greedy else int(eval_cfg.num_samples),
            recovery=bool(eval_cfg.recovery), seed=int(eval_cfg.seed),
        )

    def sampling(self) -> SamplingParams:
        return SamplingParams(temperature=self.temperature, top_p=self.top_p, top_k=self.top_k,
                              max_new_tokens=self.max_new_tokens)

    def fingerprint(self) -> dict[str, Any]:
        return asdict(self)


RECOVERY_SAMPLING = SamplingParams(temperature=0.0, max_new_tokens=1)


def sample_seed(seed: int, question_id: str, sample: int) -> int:
    """The seed of one (question, sample): a hash, so it does not depend on which other
    questions run, in what order, or whether the run was resumed."""
    digest = hashlib.sha256(json.dumps([seed, question_id, sample]).encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1   # non-negative int64


@dataclass(frozen=True)
class RecoveryTokens:
    """How to re-decode an answer letter: the text appended after the completion, as token ids,
    and the single token of each letter that may follow it."""

    suffix_ids: tuple[int, ...]
    letter_of_token: dict[int, str]

    def allowed_ids(self, letters: Sequence[str]) -> tuple[int, ...]:
        wanted = set(letters)
        return tuple(sorted(t for t, letter in self.letter_of_token.items() if letter in wanted))


def recovery_tokens(tokenizer: Any, letters: Sequence[str], suffix: str = RECOVERY_SUFFIX) -> RecoveryTokens:
    """Token ids for ``completion + suffix`` followed by one letter token.

    ``RECOVERY_SUFFIX`` ends with a space, and BPE tokenizers usually merge that space into the
    letter (``"is A"`` is ``is`` + ``ĠA``). We use the tokenisation the model saw in training:
    the suffix without its trailing space, then the merged ``" A"`` token, when the tokenizer
    merges every letter that way; otherwise the suffix as is, then the bare letter token.
    """
    encode = lambda text: list(tokenizer.encode(text, add_special_tokens=False))  # noqa: E731
    merged = _letter_tokens(encode, suffix.rstrip(" "), [suffix[len(suffix.rstrip(" ")):] + L for L in letters], letters)
    if merged is not None:
        return merged
    plain = _letter_tokens(encode, suffix, list(letters), letters)
    if plain is None:
        raise ValueError(
            f"cannot re-decode answer letters with this tokenizer: after {suffix!r} the letters "
            f"{list(letters)} are not single tokens"
        )
    return plain


def _letter_tokens(encode: Any, context: str, continuations: list[str], letters: Sequence[str]) -> RecoveryTokens | None:
    context_ids = encode(context)
    mapping: dict[int, str] = {}
    for continuation, letter in zip(continuations, letters):
        full = encode(context + continuation)
        if full[:-1] != context_ids or len(full) != len(context_ids) + 1:
            return None
        token = full[-1]
        if token in mapping:
            return None
        mapping[token] = letter
    return RecoveryTokens(tuple(context_ids), mapping)


def recovery_prompt(prompt_ids: Sequence[int], completion_ids: Sequence[int], suffix_ids: Sequence[int],
                    stopped: bool) -> list[int]:
    """prompt + completion + suffix; a completion that ended on a stop/EOS token loses that
    token, so the answer continues the same turn."""
    completion = list(completion_ids[:-1] if stopped and completion_ids else completion_ids)
    return [*prompt_ids, *completion, *suffix_ids]
