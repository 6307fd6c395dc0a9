"""The constrained re-decode of an output that states no answer, as the paper's evaluation script
does it (``docs/evaluation.md`` lists the few places where we differ).

- Base template: a new prompt = the original prompt + the completion (stripped) + ``.`` (unless it
  already ends with one) + ``"\\nRespond with one option only.\\nThe answer is "``.
- Chat template: the conversation so far (system prompt, question, the completion as the
  assistant's turn) plus a new user turn ``"Respond with one option only. The answer is "``,
  rendered by the model's own chat template with the generation prompt.
- Greedy; one new token for Qwen2/Qwen3-family models, two for the others; every new token is
  restricted to the benchmark's letters (for Llama/Gemma-family models also the tokens of
  ``"A."``, ``"B."``, ..., as the script adds them).
- The answer is the decoded text stripped, without a trailing ``.``, upper-cased; when that is
  not one of the benchmark's letters (two tokens such as ``AB``) the answer stays unknown.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from medssr_nemo.prompts import PromptStyle, base_prompt, chat_messages, encode_text
from medssr_nemo.records import QuestionRecord
from medssr_nemo.rollout.interfaces import SamplingParams

REDECODE_BASE_SUFFIX = "\nRespond with one option only.\nThe answer is "
REDECODE_CHAT_TURN = "Respond with one option only. The answer is "

# model_type values (config.json) and name fragments of the families the script gives one token
_ONE_TOKEN_TYPES = ("qwen2", "qwen3")
_ONE_TOKEN_NAMES = ("qwen2", "qwen3")
# families for which the script also allows the tokens of "A." etc. (by name in the script)
_LETTER_DOT_TYPES = ("llama", "gemma")
_LETTER_DOT_NAMES = ("gemma", "llama", "biomed", "huatuo", "deepseek-r1", "medreason")


def redecode_new_tokens(model_name: str, model_type: str | None) -> int:
    """1 for Qwen2/Qwen3-family models (by ``model_type`` or name), else 2 (the script's rule)."""
    name = model_name.lower()
    if (model_type or "").lower().startswith(_ONE_TOKEN_TYPES) or any(n in name for n in _ONE_TOKEN_NAMES):
        return 1
    return 2


def allows_letter_dot(model_name: str, model_type: str | None) -> bool:
    name = model_name.lower()
    return (model_type or "").lower().startswith(_LETTER_DOT_TYPES) or any(n in name for n in _LETTER_DOT_NAMES)


def redecode_prompt_text(record: QuestionRecord, completion_text: str, tokenizer: Any, style: PromptStyle) -> str:
    """The re-decode prompt for ``record`` after ``completion_text`` (see the module docstring)."""
    answer = completion_text.strip()
    if style == "base":
        return base_prompt(record) + answer + ("" if answer.endswith(".") else ".") + REDECODE_BASE_SUFFIX
    if style == "chat":
        messages = [*chat_messages(record), {"role": "assistant", "content": answer},
                    {"role": "user", "content": REDECODE_CHAT_TURN}]
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    raise ValueError(f"unknown prompt style {style!r}; allowed: 'base', 'chat'")


@dataclass(frozen=True)
class Redecoder:
    """How one checkpoint re-decodes: its tokenizer and template, how many tokens, which ids."""

    tokenizer: Any
    prompt_style: PromptStyle
    new_tokens: int                 # 1 (Qwen2/Qwen3 family) or 2
    letter_dot: bool                # also allow the tokens of "A." etc.
    _ids: dict = field(default_factory=dict, compare=False, repr=False)

    def letter_token(self, letter: str) -> int:
        ids = list(self.tokenizer.encode(letter, add_special_tokens=False))
        if len(ids) != 1:
            raise ValueError(f"cannot re-decode with this tokenizer: the option letter {letter!r} is "
                             f"{len(ids)} tokens {ids}, not one")
        return ids[0]

    def allowed_ids(self, letters: Sequence[str]) -> tuple[int, ...]:
        """Token ids the re-decode may produce for a benchmark with ``letters``."""
        key = tuple(letters)
        if key not in self._ids:
            ids = {self.letter_token(letter) for letter in letters}
            if self.letter_dot:
                for letter in letters:
                    ids.update(self.tokenizer.encode(f"{letter}.", add_special_tokens=False))
            self._ids[key] = tuple(sorted(ids))
        return self._ids[key]

    def prompt_text(self, record: QuestionRecord, completion_text: str) -> str:
        return redecode_prompt_text(record, completion_text, self.tokenizer, self.prompt_style)

    def prompt_ids(self, record: QuestionRecord, completion_text: str) -> list[int]:
        return encode_text(self.prompt_text(record, completion_text), self.tokenizer, self.prompt_style)

    def sampling(self, letters: Sequence[str]) -> SamplingParams:
        return SamplingParams(temperature=0.0, max_new_tokens=self.new_tokens,
                              allowed_token_ids=self.allowed_ids(letters))

    @staticmethod
    def read(text: str, letters: Sequence[str]) -> str | None:
        """The re-decoded answer: the script's normalisation, kept only when it is one letter."""
        answer = text.strip().rstrip(".").upper()
        return answer if answer in set(letters) else None


def make_redecoder(tokenizer: Any, prompt_style: PromptStyle, model_name: str, model_type: str | None,
                   new_tokens: int | None = None) -> Redecoder:
    """The re-decoder of one checkpoint; ``new_tokens`` overrides the family rule (labelling
    uses 1: a vote needs a letter, and a second token can only turn one into an unknown)."""
    return Redecoder(tokenizer, prompt_style, new_tokens or redecode_new_tokens(model_name, model_type),
                     allows_letter_dot(model_name, model_type))
