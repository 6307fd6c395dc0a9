"""Answer extraction with the paper's rule: the last ``The answer is X`` wins.

Variants accepted (all case-insensitive): ``The answer is B``, ``(B)``, ``[B]``, ``**B**``,
``answer is: B``, and ``\\boxed{B}``. Only the question's valid letters count: a statement naming
a letter outside the options is ignored, so an earlier valid statement can still stand.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

_LETTER = r"[\(\[\{\*\s]*([A-Za-z])(?![A-Za-z])"
_PATTERNS = (
    re.compile(r"the\s+(?:final\s+)?answer\s+is\s*:?" + _LETTER, re.IGNORECASE),
    re.compile(r"\\boxed\{\s*(?:\\text\{)?\s*([A-Za-z])\s*\}?\s*\}"),
)
_FORMAT = re.compile(r"The answer is \[?\(?([A-Z])\b")


@dataclass(frozen=True)
class ExtractedAnswer:
    letter: str | None      # the valid letter extracted, or None
    position: int           # character offset of the winning match (-1 if none)


def extract_answer(text: str, valid_letters: Sequence[str]) -> str | None:
    """The last valid answer letter stated in ``text``, or None."""
    return find_answer(text, valid_letters).letter


def find_answer(text: str, valid_letters: Sequence[str]) -> ExtractedAnswer:
    valid = {letter.upper() for letter in valid_letters}
    best = ExtractedAnswer(None, -1)
    for pattern in _PATTERNS:
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


def follows_format(text: str, valid_letters: Sequence[str]) -> bool:
    """True when ``text`` states ``The answer is X`` (exact paper phrasing) with a valid X."""
    valid = set(valid_letters)
    return any(m.group(1) in valid for m in _FORMAT.finditer(text))
