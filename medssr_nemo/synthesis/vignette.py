"""Case vignettes from a disease profile: a coherent patient, then phenotypes sampled by frequency.

A vignette is what a clinician would see. The patient comes first: sex (see ``choose_sex``) and an
age that is always stated and lies in the band of the disease's onset (no onset known: the
onsets its findings state, the name implies, else a child's band when the disease is mostly
developmental, growth or birth findings and an adult's band otherwise). Then findings: each
annotated phenotype appears with the probability the knowledge base gives for it (unknown
frequency: ``UNKNOWN_FREQUENCY``), among those the patient can show (``patient.PatientRules``: no
finding of the other sex, no post-pubertal finding in a child), that are not vague grouping
headings, and that the caller's ``usable`` test accepts (the question builder rejects findings
that would name the disease). A finding already implied by a more specific one drawn is dropped
("Seizure" next to "Focal seizure"); the most specific findings (highest IC) are kept when too
many were drawn; too few are topped up with the most frequent ones. Labels are written as
clinical phrases (``phrasing``).
"""

from __future__ import annotations

import random
import re
from collections import Counter
from dataclasses import dataclass
from typing import Callable

from medssr_nemo.knowledge.interfaces import DiseaseProfile, PhenotypeAnnotation
from medssr_nemo.synthesis.patient import Patient, PatientRules
from medssr_nemo.synthesis.phrasing import clinical_phrase, is_vague

UNKNOWN_FREQUENCY = 0.5
MIN_FINDINGS, MAX_FINDINGS = 3, 6

# onset term name -> (age unit, youngest, oldest age at presentation, clause)
_ONSET_AGES: dict[str, tuple[str, int, int, str]] = {
    "Antenatal onset": ("newborn", 0, 0, "Prenatal ultrasound had already shown abnormalities."),
    "Embryonal onset": ("newborn", 0, 0, "The findings have been present since birth."),
    "Fetal onset": ("newborn", 0, 0, "Prenatal ultrasound had already shown abnormalities."),
    "Late first trimester onset": ("newborn", 0, 0, "Prenatal ultrasound had already shown abnormalities."),
    "Second trimester onset": ("newborn", 0, 0, "Prenatal ultrasound had already shown abnormalities."),
    "Third trimester onset": ("newborn", 0, 0, "Prenatal ultrasound had already shown abnormalities."),
    "Congenital onset": ("newborn", 0, 0, "The findings have been present since birth."),
    "Neonatal onset": ("day", 3, 27, "Symptoms began in the first weeks of life."),
    "Infantile onset": ("month", 2, 11, "Symptoms began in infancy."),
    "Pediatric onset": ("year", 2, 15, "Symptoms began in childhood."),
    "Childhood onset": ("year", 2, 7, "Symptoms began in early childhood."),
    "Juvenile onset": ("year", 6, 16, "Symptoms began in late childhood."),
    "Adult onset": ("year", 18, 60, "Symptoms began in adulthood."),
    "Young adult onset": ("year", 17, 40, "Symptoms began in young adulthood."),
    "Early young adult onset": ("year", 17, 25, "Symptoms began in young adulthood."),
    "Intermediate young adult onset": ("year", 25, 32, "Symptoms began in young adulthood."),
    "Late young adult onset": ("year", 32, 40, "Symptoms began in young adulthood."),
    "Middle age onset": ("year", 40, 60, "Symptoms began in middle age."),
    "Late onset": ("year", 60, 80, "Symptoms began late in life."),
    "Puerpural onset": ("year", 20, 40, "Symptoms began after childbirth."),
    "Perimenopausal onset": ("year", 45, 55, "Symptoms began around menopause."),
    "Postmenopausal onset": ("year", 52, 68, "Symptoms began after menopause."),
}
# no onset known anywhere: a child for a developmental disease, else an adult
CHILD_BAND, ADULT_BAND = ("year", 1, 12, ""), ("year", 18, 50, "")
CHILD_HINT_SHARE = 0.10
_FEMALE_ONSETS = {"Puerpural onset", "Perimenopausal onset", "Postmenopausal onset"}
_X_RECESSIVE = "X-linked recessive inheritance"


@dataclass
class Vignette:
    text: str                           # the case, without the question sentence
    findings: list[PhenotypeAnnotation]
    sex: str
    onset: str | None
    patient: Patient | None = None


def choose_sex(profile: DiseaseProfile, rng: random.Random) -> str:
    """The disease's own sex restriction, male for X-linked recessive-only diseases, female for
    menopause/puerperal onsets, otherwise a fair coin."""
    if profile.sex:
        return profile.sex
    if profile.inheritance == [_X_RECESSIVE] or set(profile.inheritance) == {_X_RECESSIVE, "X-linked inheritance"}:
        return "male"
    if onset_of(profile) in _FEMALE_ONSETS:
        return "female"
    return rng.choice(["male", "female"])


# onset words in disease names ("Lethal infantile mitochondrial myopathy"), used when the knowledge
# base states no onset, so an infantile disease never presents in "a woman"
_NAME_ONSETS = (("neonatal", "Neonatal onset"), ("infantile", "Infantile onset"), ("congenital", "Congenital onset"),
                ("childhood", "Childhood onset"), ("juvenile", "Juvenile onset"), ("adult", "Adult onset"),
                ("late-onset", "Late onset"))


def onset_of(profile: DiseaseProfile) -> str | None:
    """The first known onset term of the profile, else the one most of its findings state, else
    one the disease name implies, else None."""
    onset = next((o for o in profile.onset if o in _ONSET_AGES), None)
    if onset is None:
        counts = Counter(p.onset for p in profile.phenotypes if p.onset in _ONSET_AGES)
        onset = min(counts, key=lambda o: (-counts[o], o)) if counts else None
    if onset is None:
        name = profile.name.lower()
        onset = next((term for word, term in _NAME_ONSETS if re.search(rf"\b{word}\b", name)), None)
    return onset


@dataclass
class Person:
    text: str                 # "A 7-year-old boy"
    patient: Patient
    onset: str | None
    clause: str               # "Symptoms began in infancy." or ""


def person(profile: DiseaseProfile, sex: str, rng: random.Random, childlike: bool = False) -> Person:
    """The patient of a case for ``profile``: an age in its onset band, always stated;
    ``childlike``: with no onset known, the disease is mostly developmental findings."""
    onset = onset_of(profile)
    unit, low, high, clause = _ONSET_AGES[onset] if onset is not None else CHILD_BAND if childlike else ADULT_BAND
    child = {"male": "boy", "female": "girl"}[sex]
    adult = {"male": "man", "female": "woman"}[sex]
    if unit == "newborn":
        return Person(f"A newborn {child}", Patient(0.0, sex), onset, clause)
    age = rng.randint(low, high)
    if unit == "day":
        return Person(f"A {age}-day-old {child}", Patient(age / 365, sex), onset, clause)
    if unit == "month":
        return Person(f"A {age}-month-old {child}", Patient(age / 12, sex), onset, clause)
    return Person(f"A {age}-year-old {child if age < 18 else adult}", Patient(float(age), sex), onset, clause)


CHILD_HINT_ROOTS = ("HP:0012759", "HP:0001197", "HP:0001507")  # neurodevelopment, prenatal/birth, growth


def is_childlike(profile: DiseaseProfile, ancestors: Callable[[str], frozenset[str]]) -> bool:
    """True when at least ``CHILD_HINT_SHARE`` of the findings are developmental, growth or
    birth findings: such a disease presents in childhood even when no onset is annotated."""
    if not profile.phenotypes:
        return False
    hits = sum(1 for p in profile.phenotypes if any(r in ancestors(p.hpo_id) for r in CHILD_HINT_ROOTS))
    return hits / len(profile.phenotypes) >= CHILD_HINT_SHARE


def sample_findings(profile: DiseaseProfile, patient: Patient, rng: random.Random,
                    ic: Callable[[str], float], rules: PatientRules | None = None,
                    usable: Callable[[PhenotypeAnnotation], bool] | None = None,
                    ancestors: Callable[[str], frozenset[str]] | None = None,
                    min_findings: int = MIN_FINDINGS, max_findings: int = MAX_FINDINGS) -> list[PhenotypeAnnotation]:
    """Phenotypes drawn by frequency (see the module docstring), in a random order."""
    allowed = [p for p in profile.phenotypes
               if p.sex in (None, patient.sex) and not is_vague(p.name)
               and (rules is None or rules.fits(p.hpo_id, patient, p.sex) is None)
               and (usable is None or usable(p))]
    drawn = [p for p in allowed
             if rng.random() < (p.frequency if p.frequency is not None else UNKNOWN_FREQUENCY)]
    if ancestors is not None:
        drawn = _most_specific(drawn, ancestors)
    if len(drawn) > max_findings:
        drawn = sorted(drawn, key=lambda p: (-ic(p.hpo_id), p.hpo_id))[:max_findings]
    if len(drawn) < min_findings:
        chosen = {p.hpo_id for p in drawn}
        rest = sorted((p for p in allowed if p.hpo_id not in chosen),
                      key=lambda p: (-(p.frequency if p.frequency is not None else UNKNOWN_FREQUENCY),
                                     -ic(p.hpo_id), p.hpo_id))
        for p in rest:
            if len(drawn) >= min_findings:
                break
            candidate = drawn + [p]
            if ancestors is None or len(_most_specific(candidate, ancestors)) == len(candidate):
                drawn = candidate
    rng.shuffle(drawn)
    return drawn


def _most_specific(findings: list[PhenotypeAnnotation],
                   ancestors: Callable[[str], frozenset[str]]) -> list[PhenotypeAnnotation]:
    """Drop every finding that is an ancestor of another one in the list."""
    implied = {a for f in findings for a in ancestors(f.hpo_id) if a != f.hpo_id}
    return [f for f in findings if f.hpo_id not in implied]


def _join(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def build_vignette(profile: DiseaseProfile, rng: random.Random, ic: Callable[[str], float],
                   rules: PatientRules | None = None,
                   usable: Callable[[PhenotypeAnnotation], bool] | None = None,
                   ancestors: Callable[[str], frozenset[str]] | None = None) -> Vignette | None:
    """A case for ``profile`` or None when it has too few usable phenotypes."""
    sex = choose_sex(profile, rng)
    who = person(profile, sex, rng, childlike=ancestors is not None and is_childlike(profile, ancestors))
    findings = sample_findings(profile, who.patient, rng, ic, rules, usable, ancestors)
    if len(findings) < MIN_FINDINGS:
        return None
    newborn = who.text.startswith("A newborn")
    verb = "is examined because of" if newborn else rng.choice(
        ["is evaluated for", "is brought for evaluation of", "presents with"])
    phrases = [clinical_phrase(f.name) for f in findings]
    text = f"{who.text} {verb} {_join(phrases[:2])}."
    if len(phrases) > 2:
        text += f" Further evaluation shows {_join(phrases[2:])}."
    if who.clause:
        text += f" {who.clause}"
    return Vignette(text=text, findings=findings, sex=sex, onset=who.onset, patient=who.patient)
