"""Multiple-choice questions built from knowledge-base facts, without any language model.

Four question types, each with its key taken straight from the knowledge base:

- ``diagnosis``: a case vignette (age, sex, onset, phenotypes drawn by frequency) -> the disease;
- ``gene``: the disease (or, when hard, its vignette) -> the causative gene;
- ``inheritance``: the disease (or, when hard, its vignette) -> its mode of inheritance;
- ``not_expected``: the disease -> the finding the knowledge base states is absent (NOT).

Difficulty is a dial on the distractors, chosen by phenotype similarity to the key disease
(``PhenotypeSimilarity``): ``hard`` takes the nearest neighbours, ``medium`` the next tier
(ranks 20-200), ``easy`` diseases from the least similar half. A distractor never denotes the
key disease (shared ids, equal names, or a sibling subtype such as "Joubert syndrome 14" for
"Joubert syndrome 15"), and for a vignette never has every finding the vignette shows, so the
key stays the only defensible answer.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

from medssr_nemo.knowledge.interfaces import DiseaseProfile
from medssr_nemo.knowledge.names import family_name, normalise
from medssr_nemo.knowledge.obo import Ontology
from medssr_nemo.synthesis.similarity import PhenotypeSimilarity
from medssr_nemo.synthesis.vignette import MIN_FINDINGS, build_vignette

QUESTION_TYPES = ("diagnosis", "gene", "inheritance", "not_expected")
MEDIUM_RANKS = (20, 200)
MAX_TIER_VISITS = 400     # candidates looked at before a slot gives up on its tier
MAX_GENES = 3            # a disease with more genes (a contiguous deletion) has no single "the" gene

# main modes of inheritance (HPO term name) -> (option text, chromosome, dominance)
INHERITANCE_MODES: dict[str, tuple[str, str, str]] = {
    "Autosomal dominant inheritance": ("Autosomal dominant", "autosome", "dominant"),
    "Autosomal recessive inheritance": ("Autosomal recessive", "autosome", "recessive"),
    "X-linked recessive inheritance": ("X-linked recessive", "X", "recessive"),
    "X-linked dominant inheritance": ("X-linked dominant", "X", "dominant"),
    "Mitochondrial inheritance": ("Mitochondrial", "mitochondrion", "none"),
    "Y-linked inheritance": ("Y-linked", "Y", "none"),
}


@dataclass
class BuiltQuestion:
    stem: str
    key: str
    distractors: list[str]
    knowledge_ids: list[str]
    meta: dict[str, Any] = field(default_factory=dict)


class Unbuildable(Exception):
    """This (disease, type, difficulty) cannot make a sound question; the message says why."""


# names such as "Spastic paraplegia 64, autosomal recessive" give the answer away
_INHERITANCE_WORDS = re.compile(r"autosomal|x-linked|y-linked|mitochondrial|dominant|recessive|\bAD\b|\bAR\b|"
                                r"\bXL[RD]?\b", re.IGNORECASE)


def names_gene(profile: DiseaseProfile) -> bool:
    """True when the disease name (or a synonym) gives one of its genes away: it spells the
    symbol ("MECP2 duplication") or the symbol is the name's initials ("Bardet-Biedl syndrome 9"
    -> BBS9)."""
    names = [profile.name, *profile.synonyms]
    text = " ".join(names).upper()
    words = set(re.split(r"[^A-Z0-9]+", text))
    initials = {"".join(w[0] for w in re.split(r"[\s\-,]+", n) if w and w[0].isalpha()).upper() for n in names}
    for gene in profile.genes:
        symbol = gene.upper()
        if (symbol in words if symbol.isalnum() else symbol in text):
            return True
        letters = symbol.rstrip("0123456789")
        if len(letters) >= 2 and letters in initials:
            return True
    return False


def display_name(profile: DiseaseProfile) -> str:
    """The name as an option shows it: old OMIM titles in capitals ("CYSTATHIONINURIA") are
    written in sentence case."""
    name = profile.name
    return name[0] + name[1:].lower() if name.isupper() and len(name) > 5 else name


def main_inheritance(profile: DiseaseProfile) -> list[str]:
    """The disease's main modes (see ``INHERITANCE_MODES``); generic 'X-linked inheritance'
    alongside a specific X-linked mode adds nothing."""
    return [m for m in profile.inheritance if m in INHERITANCE_MODES]


class KGQuestionBuilder:
    """Builds questions over a fixed set of disease profiles."""

    def __init__(self, profiles: Sequence[DiseaseProfile], ontology: Ontology, num_options: int = 5) -> None:
        self.profiles = list(profiles)
        self.ontology = ontology
        self.num_options = num_options
        self.similarity = PhenotypeSimilarity(self.profiles, ontology)
        self.row = self.similarity.row
        self._names = [normalise(p.name) for p in self.profiles]
        # a family is the bag of words of the name without its subtype number, so "Hemophagocytic
        # lymphohistiocytosis, familial, 2" and "Familial hemophagocytic lymphohistiocytosis" meet
        self._families = [frozenset(family_name(p.name).split()) for p in self.profiles]
        # entries that denote or overlap the same disease (exact, broader or narrower mappings)
        self._same = [set(p.source_ids) | set(p.related_ids) | {p.id} for p in self.profiles]
        self.eligible: dict[str, list[int]] = {t: [] for t in QUESTION_TYPES}
        for i, p in enumerate(self.profiles):
            if len(p.phenotypes) >= MIN_FINDINGS:
                self.eligible["diagnosis"].append(i)
            if 1 <= len(p.genes) <= MAX_GENES and not names_gene(p):
                self.eligible["gene"].append(i)
            if len(main_inheritance(p)) == 1 and not _INHERITANCE_WORDS.search(p.name):
                self.eligible["inheritance"].append(i)
            if p.excluded and len(p.phenotypes) >= num_options - 1:
                self.eligible["not_expected"].append(i)

    def categories(self) -> list[str]:
        return sorted({p.category for p in self.profiles if p.category})

    def candidates(self, question_type: str, category: str | None) -> list[int]:
        rows = self.eligible[question_type]
        return rows if category is None else [i for i in rows if self.profiles[i].category == category]

    # -- distractor diseases -------------------------------------------------------------------
    def _distinct_from(self, j: int, taken: list[int]) -> bool:
        for k in taken:
            if (self._names[j] == self._names[k] or self._families[j] == self._families[k]
                    or self._same[j] & self._same[k]):
                return False
        return True

    def _ranked_rows(self, target: int, difficulty: str, rng: random.Random) -> Iterator[int]:
        """Candidate rows in the order the difficulty asks for (validity is checked by the caller):
        hard walks down from the nearest neighbour; medium and easy visit their tier in a seeded
        random order (sampled lazily: the easy tier holds thousands of diseases)."""
        order, _ = self.similarity.ranked(self.profiles[target].id)
        if difficulty == "hard":
            for r in order:
                if r != target:
                    yield int(r)
            return
        low, high = (MEDIUM_RANKS[0] + 1, min(MEDIUM_RANKS[1] + 1, len(order))) if difficulty == "medium" \
            else (len(order) // 2, len(order))
        if high <= low:
            return
        for position in rng.sample(range(low, high), min(high - low, MAX_TIER_VISITS)):
            r = int(order[position])
            if r != target:
                yield r

    def distractor_diseases(self, target: int, difficulty: str, rng: random.Random, count: int,
                            must_miss: Sequence[str] = (), need_gene: bool = False) -> list[int]:
        taken = [target]
        for j in self._ranked_rows(target, difficulty, rng):
            if need_gene and not self.profiles[j].genes:
                continue
            if not self._distinct_from(j, taken):
                continue
            if must_miss and self.similarity.covers(j, must_miss):
                continue   # this disease would also explain every finding: a second right answer
            taken.append(j)
            if len(taken) == count + 1:
                return taken[1:]
        raise Unbuildable(f"fewer than {count} valid {difficulty} distractor diseases")

    def _similarity_of(self, target: int, rows: list[int]) -> float:
        _, sims = self.similarity.ranked(self.profiles[target].id)
        return round(float(sum(sims[r] for r in rows) / len(rows)), 6) if rows else 0.0

    # -- question types ------------------------------------------------------------------------
    def build(self, question_type: str, difficulty: str, target: int, rng: random.Random) -> BuiltQuestion:
        builder = {"diagnosis": self.diagnosis, "gene": self.gene, "inheritance": self.inheritance,
                   "not_expected": self.not_expected}[question_type]
        return builder(target, difficulty, rng)

    def _vignette(self, target: int, rng: random.Random):
        vignette = build_vignette(self.profiles[target], rng, self.similarity.term_ic)
        if vignette is None:
            raise Unbuildable("too few phenotypes for a vignette")
        return vignette

    def diagnosis(self, target: int, difficulty: str, rng: random.Random) -> BuiltQuestion:
        profile = self.profiles[target]
        vignette = self._vignette(target, rng)
        finding_ids = [f.hpo_id for f in vignette.findings]
        rows = self.distractor_diseases(target, difficulty, rng, self.num_options - 1, must_miss=finding_ids)
        return BuiltQuestion(
            stem=f"{vignette.text} Which of the following is the most likely diagnosis?",
            key=display_name(profile), distractors=[display_name(self.profiles[r]) for r in rows],
            knowledge_ids=[*profile.source_ids, *finding_ids],
            meta={"distractor_ids": [self.profiles[r].id for r in rows],
                  "distractor_similarity": self._similarity_of(target, rows)},
        )

    def gene(self, target: int, difficulty: str, rng: random.Random) -> BuiltQuestion:
        profile = self.profiles[target]
        key = rng.choice(profile.genes)
        must_miss: list[str] = []
        if difficulty == "hard":
            vignette = self._vignette(target, rng)
            must_miss = [f.hpo_id for f in vignette.findings]
            stem = (f"{vignette.text} Pathogenic variants in which of the following genes most likely "
                    "explain this presentation?")
        else:
            stem = f"{display_name(profile)} is caused by pathogenic variants in which of the following genes?"
        genes: list[str] = []
        rows: list[int] = []
        own = set(profile.genes)
        for j in self._ranked_rows(target, difficulty, rng):
            candidates = [g for g in self.profiles[j].genes if g not in own and g not in genes]
            if not candidates or not self._distinct_from(j, [target]):
                continue
            if must_miss and self.similarity.covers(j, must_miss):
                continue
            genes.append(rng.choice(sorted(candidates)))
            rows.append(j)
            if len(genes) == self.num_options - 1:
                break
        else:
            raise Unbuildable(f"fewer than {self.num_options - 1} distractor genes")
        return BuiltQuestion(
            stem=stem, key=key, distractors=genes,
            knowledge_ids=[*profile.source_ids, f"gene:{key}", *must_miss],
            meta={"distractor_ids": [self.profiles[r].id for r in rows],
                  "distractor_similarity": self._similarity_of(target, rows)},
        )

    def inheritance(self, target: int, difficulty: str, rng: random.Random) -> BuiltQuestion:
        profile = self.profiles[target]
        modes = main_inheritance(profile)
        if len(modes) != 1:
            raise Unbuildable("not exactly one main mode of inheritance")
        key_text, chromosome, dominance = INHERITANCE_MODES[modes[0]]
        others = [(name, spec) for name, spec in INHERITANCE_MODES.items() if name != modes[0]]
        # nearness: same chromosome class and same dominance are the confusable alternatives
        distance = {name: (spec[1] != chromosome) + (spec[2] != dominance) for name, spec in others}
        ordered = sorted(distance, key=lambda n: (distance[n], list(INHERITANCE_MODES).index(n)))
        if difficulty == "easy":
            ordered = ordered[::-1]
        chosen = ordered[: min(self.num_options, len(INHERITANCE_MODES)) - 1]
        knowledge_ids = [*profile.source_ids, f"inheritance:{modes[0]}"]
        if difficulty == "hard":
            vignette = self._vignette(target, rng)
            knowledge_ids += [f.hpo_id for f in vignette.findings]
            stem = (f"{vignette.text} The condition has been confirmed genetically. "
                    "What is the most likely mode of inheritance of this condition?")
        else:
            stem = f"What is the mode of inheritance of {display_name(profile)}?"
        return BuiltQuestion(stem=stem, key=key_text, distractors=[INHERITANCE_MODES[n][0] for n in chosen],
                             knowledge_ids=knowledge_ids, meta={"inheritance_source": profile.inheritance_source})

    def not_expected(self, target: int, difficulty: str, rng: random.Random) -> BuiltQuestion:
        profile = self.profiles[target]
        excluded = rng.choice(sorted(profile.excluded, key=lambda p: p.hpo_id))
        key_up = self.ontology.ancestors(excluded.hpo_id)
        related = {p.hpo_id for p in profile.phenotypes
                   if p.hpo_id in key_up or excluded.hpo_id in self.ontology.ancestors(p.hpo_id)}
        positives = [p for p in profile.phenotypes
                     if p.hpo_id not in related and normalise(p.name) != normalise(excluded.name)]
        count = self.num_options - 1
        if len(positives) < count:
            raise Unbuildable("too few findings unrelated to the excluded one")

        def freq(p):
            return p.frequency if p.frequency is not None else 0.5
        if difficulty == "easy":      # the hallmark features: a student recognises them
            chosen = sorted(positives, key=lambda p: (-freq(p), p.hpo_id))[:count]
        elif difficulty == "hard":    # rare features: easy to mistake for the absent one
            chosen = sorted(positives, key=lambda p: (freq(p), -self.similarity.term_ic(p.hpo_id), p.hpo_id))[:count]
        else:
            chosen = rng.sample(sorted(positives, key=lambda p: p.hpo_id), count)
        return BuiltQuestion(
            stem=f"Which of the following findings is NOT a feature of {display_name(profile)}?",
            key=excluded.name,
            distractors=[p.name for p in chosen],
            knowledge_ids=[*profile.source_ids, excluded.hpo_id, *(p.hpo_id for p in chosen)],
            meta={"excluded_finding": excluded.hpo_id},
        )
