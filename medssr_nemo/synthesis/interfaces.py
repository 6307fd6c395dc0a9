"""The synthesizer seam: planned slots in, candidate questions (or explained failures) out.

The runner owns planning, filtering, chunking and resumption; a synthesizer only turns slots
into questions. It must be deterministic: the same (slot, attempt) gives the same candidate, so
an interrupted run resumes into byte-identical output.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any, Sequence

from medssr_nemo.records import QuestionRecord
from medssr_nemo.synthesis.plan import Slot


@dataclass
class Candidate:
    """What one attempt at one slot produced: a record, or the reason there is none."""

    slot: int
    record: QuestionRecord | None = None
    reason: str | None = None           # short, countable reason when ``record`` is None
    detail: str = ""                    # free text kept in a few examples of the report

    def __post_init__(self) -> None:
        if (self.record is None) == (self.reason is None):
            raise ValueError("a Candidate has either a record or a reason, not both or neither")


class Synthesizer(abc.ABC):
    """Turns planned slots into questions."""

    name: str = ""
    # planned dimensions that also apply to non-rare slots (see synthesis.plan)
    nonrare_dimensions: tuple[str, ...] = ()

    @abc.abstractmethod
    def synthesize(self, slots: Sequence[Slot], attempt: int) -> list[Candidate]:
        """One candidate per slot, in the order given; ``attempt`` (0, 1, ...) must change the
        randomness so a retry after a filtered candidate can produce a different question."""

    def supported(self) -> dict[str, list[str]]:
        """Allowed values per planned dimension (for early, clear config errors); a dimension
        left out accepts anything."""
        return {}

    def describe(self) -> dict[str, Any]:
        """Inputs (names, hashes, counts) the run card records."""
        return {"name": self.name}
