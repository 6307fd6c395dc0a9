"""What a knowledge source hands to the synthesizers.

Two shapes of knowledge exist: structured disease profiles (from an annotated knowledge base such
as HPO), which the ``kg`` synthesizer turns into questions without any model, and free-text
passages (a snippet corpus, or a profile rendered as text), which the ``llm`` synthesizer puts in
its generator prompt. A source provides whichever it has; ``profiles()`` is empty for a plain
corpus.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, Sequence


@dataclass
class PhenotypeAnnotation:
    """One phenotype of a disease, as annotated in the knowledge base."""

    hpo_id: str
    name: str
    frequency: float | None = None      # probability a patient shows it, in [0, 1]; None = unknown
    frequency_label: str = ""           # the raw annotation (HPO frequency term, "n/m" or "x%")
    onset: str | None = None            # name of the onset term, when annotated per phenotype
    sex: str | None = None              # "male" / "female" when the finding is sex-specific

    def __reduce__(self):
        # a plain constructor call: unpickling ~270k annotations this way is several times faster
        # than the default (a fresh __dict__ per object), which keeps the cached HPO load fast
        return (PhenotypeAnnotation, (self.hpo_id, self.name, self.frequency, self.frequency_label,
                                      self.onset, self.sex))


@dataclass
class DiseaseProfile:
    """Everything the knowledge base states about one disease."""

    id: str                             # "OMIM:619340", "ORPHA:558", "DECIPHER:16"
    name: str
    source_ids: list[str] = field(default_factory=list)  # this id plus exact cross-references
    related_ids: list[str] = field(default_factory=list)  # overlapping entries (broader/narrower maps)
    synonyms: list[str] = field(default_factory=list)
    phenotypes: list[PhenotypeAnnotation] = field(default_factory=list)
    excluded: list[PhenotypeAnnotation] = field(default_factory=list)  # findings stated absent (NOT)
    onset: list[str] = field(default_factory=list)       # names of disease-level onset terms
    inheritance: list[str] = field(default_factory=list)  # names of inheritance terms
    inheritance_source: str | None = None  # "hpo" or "orpha2omim" (borrowed from an exact OMIM map)
    sex: str | None = None              # "male" / "female" when the disease affects one sex only
    genes: list[str] = field(default_factory=list)       # gene symbols
    category: str | None = None         # disease group: the organ system most of its phenotypes hit
    rare: bool = True                   # a rare disease (see knowledge.hpo.assemble_profiles for OMIM)

    def phenotype_ids(self) -> list[str]:
        return [p.hpo_id for p in self.phenotypes]


@dataclass(frozen=True)
class Passage:
    """A retrieved piece of text, with the id that provenance records keep."""

    id: str
    title: str
    text: str
    score: float = 0.0


@dataclass
class LoadReport:
    """What loading a knowledge source read, kept and dropped (with the reason for each drop)."""

    files: dict[str, str] = field(default_factory=dict)     # name -> sha256
    counts: dict[str, int] = field(default_factory=dict)    # e.g. rows read, diseases, genes
    dropped: dict[str, int] = field(default_factory=dict)   # reason -> rows dropped
    examples: dict[str, list[str]] = field(default_factory=dict)  # reason -> a few "file:line: ..." samples

    MAX_EXAMPLES = 5

    def drop(self, reason: str, where: str) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + 1
        samples = self.examples.setdefault(reason, [])
        if len(samples) < self.MAX_EXAMPLES:
            samples.append(where)

    def to_dict(self) -> dict[str, Any]:
        return {"files": dict(self.files), "counts": dict(self.counts),
                "dropped": dict(sorted(self.dropped.items())),
                "examples": {k: list(v) for k, v in sorted(self.examples.items())}}


class KnowledgeSource(abc.ABC):
    """A body of medical knowledge the synthesizers draw from."""

    name: str = ""

    def profiles(self) -> Sequence[DiseaseProfile]:
        """Structured disease profiles (empty for a free-text corpus)."""
        return ()

    @abc.abstractmethod
    def retrieve(self, query: str, k: int = 3) -> list[Passage]:
        """The ``k`` passages that best match ``query``, best first."""

    @abc.abstractmethod
    def describe(self) -> dict[str, Any]:
        """Version, input-file hashes and counts: what a run's card records about this source."""
