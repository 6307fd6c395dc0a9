"""Multiple-choice questions built from knowledge-base facts, without any language model.

Four question types, each with its key taken straight from the knowledge base:

- ``diagnosis``: a case vignette (age, sex, onset, phenotypes drawn by frequency) -> the disease;
- ``gene``: the disease (or, when hard, its vignette) -> the causative gene;
- ``inheritance``: the disease (or, when hard, its vignette) -> its mode of inheritance;
- ``not_expected``: the disease -> the finding the knowledge base states is absent (NOT).

Profiles are the merged ones (``knowledge.merge``: exact OMIM/Orphanet twins are one disease,
findings both asserted and denied are dropped), so a key is checked against everything the
knowledge base says about the disease.

Difficulty is a dial on how close the distractors are, never on whether they are sensible: every
distractor disease is a phenotype neighbour of the key (same organ system, or an IC-weighted
similarity of at least ``NEIGHBOUR_MIN_SIMILARITY``); ``hard`` takes the nearest ones, ``medium``
ranks 20-200, ``easy`` ranks 200-2000 (``PhenotypeSimilarity``). Each distractor records its
reason. A distractor never denotes the key disease (shared ids, equal names, or a sibling
subtype such as "Joubert syndrome 14" for "Joubert syndrome 15").

Every question must be distinct (``distinct``): a diagnosis distractor's IC coverage of the
vignette stays ``margin`` nats below the key's; every disease covering a hard gene/inheritance
vignette shares the key; a not-expected key is absent from the whole merged profile and every
other option present. Stems are checked for leakage (``leakage``), vignettes are coherent
patients (``vignette``), and inheritance questions always offer the same autosomal/X-linked
modes, so the key is never "the only autosomal option".
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

from medssr_nemo.knowledge.interfaces import DiseaseProfile
from medssr_nemo.knowledge.names import family_name, normalise
from medssr_nemo.knowledge.obo import Ontology, top_level_groups
from medssr_nemo.synthesis.distinct import DEFAULT_MARGIN, CoverageIndex
from medssr_nemo.synthesis.leakage import LeakageChecker
from medssr_nemo.synthesis.patient import PatientRules
from medssr_nemo.synthesis.phrasing import is_vague, option_phrase
from medssr_nemo.synthesis.similarity import PhenotypeSimilarity
from medssr_nemo.synthesis.vignette import MIN_FINDINGS, build_vignette

QUESTION_TYPES = ("diagnosis", "gene", "inheritance", "not_expected")
MEDIUM_RANKS = (20, 200)
EASY_RANKS = (200, 2000)
NEIGHBOUR_MIN_SIMILARITY = 0.05
# inheritance options: the four autosomal / X-linked modes always, then the rarer ones
CORE_MODES = ("Autosomal dominant inheritance", "Autosomal recessive inheritance",
              "X-linked recessive inheritance", "X-linked dominant inheritance")
MIN_DISEASES_PER_MODE = 10   # a mode with fewer eligible diseases is not given its own share
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


class NoEligibleDisease(Unbuildable):
    """No disease of the slot's category supports the question type at all."""


# target diseases drawn for one slot before the slot is given up
MAX_DISEASE_TRIES = 8


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


# run-together words and missing spaces in catalogue titles
_NAME_FIXES = ((re.compile(r"autosomaldominant", re.I), "autosomal dominant"),
               (re.compile(r"autosomalrecessive", re.I), "autosomal recessive"),
               (re.compile(r"mentalretardation", re.I), "mental retardation"),
               (re.compile(r",(?=[A-Za-z])"), ", "))


def display_name(profile: DiseaseProfile) -> str:
    """The name as an option shows it: old OMIM titles in capitals ("CYSTATHIONINURIA") are
    written in sentence case, run-together words ("autosomaldominant") split."""
    name = profile.name
    name = name[0] + name[1:].lower() if name.isupper() and len(name) > 5 else name
    for pattern, fixed in _NAME_FIXES:
        name = pattern.sub(fixed, name)
    return name


def main_inheritance(profile: DiseaseProfile) -> list[str]:
    """The disease's main modes (see ``INHERITANCE_MODES``); generic 'X-linked inheritance'
    alongside a specific X-linked mode adds nothing."""
    return [m for m in profile.inheritance if m in INHERITANCE_MODES]


class KGQuestionBuilder:
    """Builds questions over a fixed set of (merged) disease profiles. ``contested``: per profile,
    the terms dropped for a NOT/present conflict (never used as findings or keys)."""

    def __init__(self, profiles: Sequence[DiseaseProfile], ontology: Ontology, num_options: int = 5,
                 margin: float = DEFAULT_MARGIN, contested: Sequence[frozenset[str]] | None = None) -> None:
        self.profiles = list(profiles)
        self.ontology = ontology
        self.num_options = num_options
        self.margin = margin
        self.contested = list(contested) if contested is not None else [frozenset()] * len(self.profiles)
        self.similarity = PhenotypeSimilarity(self.profiles, ontology)
        self.coverage = CoverageIndex(self.similarity, ontology.ancestors)
        self.leakage = LeakageChecker.from_ontology(ontology)
        self.rules = PatientRules(ontology)
        self._groups = top_level_groups(ontology)
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
            if len(main_inheritance(p)) == 1 and not _INHERITANCE_WORDS.search(" ".join([p.name, *p.synonyms])):
                self.eligible["inheritance"].append(i)
            if p.excluded and len(p.phenotypes) >= num_options - 1:
                self.eligible["not_expected"].append(i)
        self._by_mode: dict[str, list[int]] = {}
        for i in self.eligible["inheritance"]:
            self._by_mode.setdefault(main_inheritance(self.profiles[i])[0], []).append(i)

    def categories(self) -> list[str]:
        return sorted({p.category for p in self.profiles if p.category})

    def candidates(self, question_type: str, category: str | None) -> list[int]:
        rows = self.eligible[question_type]
        return rows if category is None else [i for i in rows if self.profiles[i].category == category]

    def draw_and_build(self, question_type: str, difficulty: str, category: str | None, rng: random.Random,
                       tries: int = MAX_DISEASE_TRIES) -> tuple[int, BuiltQuestion]:
        """(target disease, question) for one slot: up to ``tries`` diseases of ``category`` are
        drawn until one makes a sound question. Raises ``NoEligibleDisease`` when none supports the
        type, ``Unbuildable`` naming every reason when no draw worked. Both synthesizers (kg and
        the grounded drafts of llm) draw this way."""
        pool = self.candidates(question_type, category)
        if not pool:
            raise NoEligibleDisease(f"no disease of category {category!r} supports {question_type} questions")
        reasons = []
        for _ in range(tries):
            target = self.pick(question_type, pool, rng)
            try:
                return target, self.build(question_type, difficulty, target, rng)
            except Unbuildable as err:
                reasons.append(str(err))
        raise Unbuildable(f"{question_type}/{difficulty}: " + "; ".join(sorted(set(reasons))))

    def pick(self, question_type: str, pool: Sequence[int], rng: random.Random) -> int:
        """A target disease from ``pool``; inheritance questions first draw the mode uniformly
        (among modes with ``MIN_DISEASES_PER_MODE`` candidates), so keys are balanced rather than
        mostly autosomal recessive."""
        if question_type == "inheritance":
            by_mode: dict[str, list[int]] = {}
            for i in pool:
                by_mode.setdefault(main_inheritance(self.profiles[i])[0], []).append(i)
            modes = sorted(m for m, rows in by_mode.items() if len(rows) >= MIN_DISEASES_PER_MODE) or sorted(by_mode)
            return rng.choice(by_mode[rng.choice(modes)])
        return rng.choice(list(pool))

    # -- distractor diseases -------------------------------------------------------------------
    def _distinct_from(self, j: int, taken: list[int]) -> bool:
        for k in taken:
            if (self._names[j] == self._names[k] or self._families[j] == self._families[k]
                    or self._same[j] & self._same[k]):
                return False
        return True

    def neighbour_reason(self, target: int, j: int) -> str | None:
        """Why disease ``j`` is a sensible distractor for ``target`` (same organ system or close
        phenotype neighbour), or None when it is not."""
        _, sims = self.similarity.ranked(self.profiles[target].id)
        category = self.profiles[target].category
        if category and self.profiles[j].category == category:
            return f"same organ system ({category}), similarity {sims[j]:.2f}"
        if sims[j] >= NEIGHBOUR_MIN_SIMILARITY:
            return f"phenotype neighbour, similarity {sims[j]:.2f}"
        return None

    def _ranked_rows(self, target: int, difficulty: str, rng: random.Random) -> Iterator[int]:
        """Candidate rows in the order the difficulty asks for (validity is checked by the caller):
        hard walks down from the nearest neighbour; medium and easy visit their tier in a seeded
        random order (sampled lazily)."""
        order, _ = self.similarity.ranked(self.profiles[target].id)
        if difficulty == "hard":
            for r in order:
                if r != target:
                    yield int(r)
            return
        ranks = MEDIUM_RANKS if difficulty == "medium" else EASY_RANKS
        low, high = ranks[0] + 1, min(ranks[1] + 1, len(order))
        if high <= low:
            return
        for position in rng.sample(range(low, high), min(high - low, MAX_TIER_VISITS)):
            r = int(order[position])
            if r != target:
                yield r

    def distractor_diseases(self, target: int, difficulty: str, rng: random.Random, count: int,
                            findings: Sequence[str] = (), need_gene: bool = False) -> tuple[list[int], list[str]]:
        """``count`` distractor rows and the reason for each. With ``findings`` (a vignette), a
        distractor must cover them at least ``margin`` nats worse than the key."""
        taken = [target]
        reasons: list[str] = []
        floor = self.coverage.score(target, findings) - self.margin if findings else None
        for j in self._ranked_rows(target, difficulty, rng):
            if need_gene and not self.profiles[j].genes:
                continue
            if not self._distinct_from(j, taken):
                continue
            reason = self.neighbour_reason(target, j)
            if reason is None:
                continue
            if floor is not None and self.coverage.score(j, findings) > floor:
                continue   # this disease explains the findings about as well: a second right answer
            taken.append(j)
            reasons.append(reason)
            if len(taken) == count + 1:
                return taken[1:], reasons
        raise Unbuildable(f"fewer than {count} valid {difficulty} distractor diseases")

    def _similarity_of(self, target: int, rows: list[int]) -> float:
        _, sims = self.similarity.ranked(self.profiles[target].id)
        return round(float(sum(sims[r] for r in rows) / len(rows)), 6) if rows else 0.0

    # -- question types ------------------------------------------------------------------------
    def build(self, question_type: str, difficulty: str, target: int, rng: random.Random) -> BuiltQuestion:
        builder = {"diagnosis": self.diagnosis, "gene": self.gene, "inheritance": self.inheritance,
                   "not_expected": self.not_expected}[question_type]
        built = builder(target, difficulty, rng)
        profile = self.profiles[target]
        options = [built.key, *built.distractors]
        leak = (self.leakage.stem_leak(built.stem, question_type, built.key, profile,
                                       stem_names_disease=bool(built.meta.get("stem_names_disease")))
                or self.leakage.option_leak(options, 0, question_type, profile))
        if leak:
            raise Unbuildable(f"leakage: {leak}")
        return built

    def _vignette(self, target: int, rng: random.Random):
        profile = self.profiles[target]
        contested = self.contested[target]

        def usable(finding) -> bool:
            return finding.hpo_id not in contested and self.leakage.disease_leak(finding.name, profile) is None

        vignette = build_vignette(profile, rng, self.similarity.term_ic, self.rules, usable, self.ontology.ancestors)
        if vignette is None:
            raise Unbuildable("too few usable phenotypes for a vignette")
        return vignette

    def diagnosis(self, target: int, difficulty: str, rng: random.Random) -> BuiltQuestion:
        profile = self.profiles[target]
        vignette = self._vignette(target, rng)
        finding_ids = [f.hpo_id for f in vignette.findings]
        rows, reasons = self.distractor_diseases(target, difficulty, rng, self.num_options - 1, findings=finding_ids)
        key_score = self.coverage.score(target, finding_ids)
        return BuiltQuestion(
            stem=f"{vignette.text} Which of the following is the most likely diagnosis?",
            key=display_name(profile), distractors=[display_name(self.profiles[r]) for r in rows],
            knowledge_ids=[*profile.source_ids, *finding_ids],
            meta={"distractor_ids": [self.profiles[r].id for r in rows], "distractor_reasons": reasons,
                  "distractor_similarity": self._similarity_of(target, rows),
                  "coverage_gap": round(key_score - max(self.coverage.score(r, finding_ids) for r in rows), 3)},
        )

    def _covering(self, target: int, finding_ids: list[str]) -> list[int]:
        """Other diseases that explain the vignette about as well as the key (see ``distinct``),
        twins and same-family subtypes of the key left out (they denote the same disease)."""
        return [r for r in self.coverage.covering(finding_ids, target, self.margin) if self._distinct_from(r, [target])]

    def gene(self, target: int, difficulty: str, rng: random.Random) -> BuiltQuestion:
        profile = self.profiles[target]
        key = rng.choice(profile.genes)
        findings: list[str] = []
        forbidden = set(profile.genes)
        if difficulty == "hard":
            vignette = self._vignette(target, rng)
            findings = [f.hpo_id for f in vignette.findings]
            covering = self._covering(target, findings)
            if any(key not in self.profiles[r].genes for r in covering):
                raise Unbuildable("another disease with a different gene covers the vignette")
            forbidden |= {g for r in covering for g in self.profiles[r].genes}
            stem = (f"{vignette.text} Pathogenic variants in which of the following genes most likely "
                    "explain this presentation?")
        else:
            stem = f"{display_name(profile)} is caused by pathogenic variants in which of the following genes?"
        genes: list[str] = []
        rows: list[int] = []
        reasons: list[str] = []
        for j in self._ranked_rows(target, difficulty, rng):
            candidates = [g for g in self.profiles[j].genes if g not in forbidden and g not in genes]
            if not candidates or not self._distinct_from(j, [target]):
                continue
            reason = self.neighbour_reason(target, j)
            if reason is None:
                continue
            genes.append(rng.choice(sorted(candidates)))
            rows.append(j)
            reasons.append(f"gene of {self.profiles[j].name}: {reason}")
            if len(genes) == self.num_options - 1:
                break
        else:
            raise Unbuildable(f"fewer than {self.num_options - 1} distractor genes")
        return BuiltQuestion(
            stem=stem, key=key, distractors=genes,
            knowledge_ids=[*profile.source_ids, f"gene:{key}", *findings],
            meta={"distractor_ids": [self.profiles[r].id for r in rows], "distractor_reasons": reasons,
                  "distractor_similarity": self._similarity_of(target, rows),
                  "stem_names_disease": difficulty != "hard"},
        )

    def inheritance_options(self, mode: str) -> list[str]:
        """The key plus the other modes: the four autosomal/X-linked ones first (so the key is
        never the only autosomal or only X-linked option), then the nearest rarer ones."""
        _, chromosome, dominance = INHERITANCE_MODES[mode]
        rest = [m for m in INHERITANCE_MODES if m not in CORE_MODES and m != mode]
        rest.sort(key=lambda m: ((INHERITANCE_MODES[m][1] != chromosome) + (INHERITANCE_MODES[m][2] != dominance),
                                 list(INHERITANCE_MODES).index(m)))
        ordered = [m for m in CORE_MODES if m != mode] + rest
        return ordered[: min(self.num_options, len(INHERITANCE_MODES)) - 1]

    def inheritance(self, target: int, difficulty: str, rng: random.Random) -> BuiltQuestion:
        profile = self.profiles[target]
        modes = main_inheritance(profile)
        if len(modes) != 1:
            raise Unbuildable("not exactly one main mode of inheritance")
        chosen = self.inheritance_options(modes[0])
        knowledge_ids = [*profile.source_ids, f"inheritance:{modes[0]}"]
        if difficulty == "hard":
            vignette = self._vignette(target, rng)
            findings = [f.hpo_id for f in vignette.findings]
            if any(modes[0] not in main_inheritance(self.profiles[r]) for r in self._covering(target, findings)):
                raise Unbuildable("another disease with a different mode of inheritance covers the vignette")
            knowledge_ids += findings
            stem = (f"{vignette.text} The condition has been confirmed genetically. "
                    "What is the most likely mode of inheritance of this condition?")
        else:
            stem = f"What is the mode of inheritance of {display_name(profile)}?"
        return BuiltQuestion(stem=stem, key=INHERITANCE_MODES[modes[0]][0],
                             distractors=[INHERITANCE_MODES[n][0] for n in chosen], knowledge_ids=knowledge_ids,
                             meta={"inheritance_source": profile.inheritance_source,
                                   "stem_names_disease": difficulty != "hard"})

    def _systems(self, hpo_id: str) -> set[str]:
        return {self._groups[a] for a in self.ontology.ancestors(hpo_id) if a in self._groups}

    def not_expected(self, target: int, difficulty: str, rng: random.Random) -> BuiltQuestion:
        profile = self.profiles[target]
        contested = self.contested[target]
        present = {p.hpo_id for p in profile.phenotypes}
        # a NOT directly under a present finding ("Impaired platelet aggregation" present, NOT
        # "Impaired thrombin-induced platelet aggregation") is a distinction too fine to key on
        excluded_pool = [p for p in profile.excluded if p.hpo_id not in contested and not is_vague(p.name)
                         and not set(self.ontology.terms[p.hpo_id].parents if p.hpo_id in self.ontology.terms
                                     else ()) & present]
        if not excluded_pool:
            raise Unbuildable("every NOT finding is contested")
        excluded = rng.choice(sorted(excluded_pool, key=lambda p: p.hpo_id))
        key_up = self.ontology.ancestors(excluded.hpo_id)
        if any(excluded.hpo_id in self.ontology.ancestors(p.hpo_id) for p in profile.phenotypes):
            raise Unbuildable("the NOT finding (or a descendant) is also annotated as present")
        related = {p.hpo_id for p in profile.phenotypes
                   if p.hpo_id in key_up or excluded.hpo_id in self.ontology.ancestors(p.hpo_id)}
        key_text = option_phrase(excluded.name)
        names = {normalise(n) for n in [profile.name, *profile.synonyms]}
        positives = [p for p in profile.phenotypes
                     if p.hpo_id not in related and p.hpo_id not in contested and not is_vague(p.name)
                     and normalise(option_phrase(p.name)) != normalise(key_text) and normalise(p.name) not in names]
        count = self.num_options - 1
        if len(positives) < count:
            raise Unbuildable("too few findings unrelated to the excluded one")
        key_systems = self._systems(excluded.hpo_id)

        def same_system(p) -> int:   # 0 first: options from the key's organ system, so it is no odd one out
            return 0 if self._systems(p.hpo_id) & key_systems else 1

        def freq(p):
            return p.frequency if p.frequency is not None else 0.5
        if difficulty == "easy":      # the hallmark features: a student recognises them
            ranked = sorted(positives, key=lambda p: (same_system(p), -freq(p), p.hpo_id))
        elif difficulty == "hard":    # rare features: easy to mistake for the absent one
            ranked = sorted(positives, key=lambda p: (same_system(p), freq(p), -self.similarity.term_ic(p.hpo_id), p.hpo_id))
        else:
            shuffled = sorted(positives, key=lambda p: p.hpo_id)
            rng.shuffle(shuffled)
            ranked = sorted(shuffled, key=same_system)
        chosen = ranked[:count]
        shared = sum(same_system(p) == 0 for p in chosen)
        if shared < min(2, count):
            raise Unbuildable("fewer than two present findings share an organ system with the absent one")
        return BuiltQuestion(
            stem=f"Which of the following findings is NOT a feature of {display_name(profile)}?",
            key=key_text, distractors=[option_phrase(p.name) for p in chosen],
            knowledge_ids=[*profile.source_ids, excluded.hpo_id, *(p.hpo_id for p in chosen)],
            meta={"excluded_finding": excluded.hpo_id, "option_findings": [excluded.hpo_id, *(p.hpo_id for p in chosen)],
                  "distractor_reasons": [f"present in the profile, same organ system: {same_system(p) == 0}"
                                         for p in chosen],
                  "stem_names_disease": True},
        )
