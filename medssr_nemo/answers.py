"""Answer extraction: the one reader of answer letters used by evaluation, rewards and
pseudo-labels, so the three can never disagree.

Two modes (``answer.extraction``, overridable per stage, see ``docs/evaluation.md``):

``paper`` (the default): the rules of the MedSSR paper's released evaluation script, in order.

1. ``The answer is ([A-Z])``
2. ``The answer is $\\boxed{X}$``
3. ``The answer is [X]``
4. ``The answer is **X**`` -- only when the model's name contains ``gemma``
5. rule 1 case-insensitive, the letter upper-cased

The first rule with any match decides, and within it the last match wins. The letter is not
checked against the question's options: "The answer is E" on a four-option question is the
answer E (scored wrong), and "The answer is Bacteria" is the answer B (rule 1 reads the capital).

``lenient`` (this project's earlier rule, kept as an option): the last statement across the
forms ``The answer is B`` (any case, optional ``final`` and colon), ``(B)``, ``[B]``, ``**B**``
and a bare ``\\boxed{B}``; only the question's own letters count (an out-of-range letter is
ignored, so an earlier valid statement can still stand) and a lower-case letter must stand alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, Sequence

ExtractionMode = Literal["paper", "lenient"]
EXTRACTION_MODES: tuple[str, ...] = ("paper", "lenient")

# ---- paper -----------------------------------------------------------------------------------
_PAPER_RULES = (
    re.compile(r"The answer is ([A-Z])"),
    re.compile(r"The answer is \$\\boxed\{([A-Z])\}\$"),
    re.compile(r"The answer is \[([A-Z])\]"),
)
_PAPER_GEMMA_RULE = re.compile(r"The answer is \*\*([A-Z])\*\*")
_PAPER_ANY_CASE_RULE = re.compile(r"The answer is ([A-Z])", re.IGNORECASE)


def extract_paper(text: str, model_name: str | None = None) -> str | None:
    """The answer letter under the paper script's rules (see the module docstring), or None."""
    if not text:
        return None
    text = text.strip()
    for rule in _PAPER_RULES:
        matches = rule.findall(text)
        if matches:
            return matches[-1]
    if model_name and "gemma" in model_name.lower():
        matches = _PAPER_GEMMA_RULE.findall(text)
        if matches:
            return matches[-1]
    matches = _PAPER_ANY_CASE_RULE.findall(text)
    return matches[-1].upper() if matches else None


# ---- lenient ---------------------------------------------------------------------------------
_LETTER = r"[\(\[\{\*\s]*([A-Za-z])(?![A-Za-z])"
_LENIENT_PATTERNS = (
    re.compile(r"the\s+(?:final\s+)?answer\s+is\s*:?" + _LETTER, re.IGNORECASE),
    re.compile(r"\\boxed\{\s*(?:\\text\{)?\s*([A-Za-z])\s*\}?\s*\}"),
)
_FORMAT = re.compile(r"The answer is \[?\(?([A-Z])\b")


@dataclass(frozen=True)
class ExtractedAnswer:
    letter: str | None      # the valid letter extracted, or None
    position: int           # character offset of the winning match (-1 if none)


def find_answer(text: str, valid_letters: Sequence[str]) -> ExtractedAnswer:
    """The lenient mode's winner: the last valid letter over every accepted form."""
    valid = {letter.upper() for letter in valid_letters}
    best = ExtractedAnswer(None, -1)
    for pattern in _LENIENT_PATTERNS:
        for match in pattern.finditer(text):
            letter = match.group(1).upper()
            # a lone lower-case word such as "a" in "the answer is a rare..." is not a letter
            if match.group(1).islower() and not _is_isolated(text, match.start(1), match.end(1)):
                continue
            if letter in valid and match.start(1) > best.position:
                best = ExtractedAnswer(letter, match.start(1))
    return best


def _is_isolated(text: str, start: int, end: int) -> bool:
    """A lower-case letter counts only when it stands alone (``b.``, ``(b)``, end of text)."""
    after = text[end:end + 2]
    return after == "" or after[0] in ".)]}*,;:\n" or after.strip() == ""


# ---- the shared entry points -----------------------------------------------------------------
def extract_answer(text: str, valid_letters: Sequence[str], mode: str = "paper",
                   model_name: str | None = None) -> str | None:
    """The answer letter stated in ``text`` under ``mode`` (``paper`` or ``lenient``), or None.

    ``valid_letters`` (the question's options) only matters in ``lenient`` mode; ``model_name``
    only for the paper's gemma-only rule.
    """
    if mode == "paper":
        return extract_paper(text, model_name)
    if mode == "lenient":
        return find_answer(text, valid_letters).letter
    raise ValueError(f"unknown answer extraction mode {mode!r}; allowed: {', '.join(EXTRACTION_MODES)}")


@dataclass(frozen=True)
class AnswerReader:
    """An extraction mode bound to the model whose outputs it reads (the gemma rule needs the
    name); what evaluation, rewards and labelling pass around."""

    mode: str = "paper"
    model_name: str | None = None

    def __post_init__(self) -> None:
        if self.mode not in EXTRACTION_MODES:
            raise ValueError(f"unknown answer extraction mode {self.mode!r}; allowed: {', '.join(EXTRACTION_MODES)}")

    def __call__(self, text: str, valid_letters: Sequence[str]) -> str | None:
        return extract_answer(text, valid_letters, self.mode, self.model_name)


def follows_format(text: str, valid_letters: Sequence[str]) -> bool:
    """True when ``text`` states ``The answer is X`` (the instructed phrase, exact case) with one
    of the question's letters; used by the format reward and the format-rate metrics."""
    valid = set(valid_letters)
    return any(m.group(1) in valid for m in _FORMAT.finditer(text))
