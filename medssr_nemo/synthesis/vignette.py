"""Case vignettes from a disease profile: age from the onset, sex, phenotypes sampled by frequency.

A vignette is what a clinician would see: each annotated phenotype appears with the probability
the knowledge base gives for it (unknown frequency: ``UNKNOWN_FREQUENCY``), findings specific to
the other sex never appear, and the most specific findings (highest IC) are kept when too many
were drawn. Too few drawn findings are topped up with the most frequent ones.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Callable

from medssr_nemo.knowledge.interfaces import DiseaseProfile, PhenotypeAnnotation

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
_FEMALE_ONSETS = {"Puerpural onset", "Perimenopausal onset", "Postmenopausal onset"}
_X_RECESSIVE = "X-linked recessive inheritance"


@dataclass
class Vignette:
    text: str                           # the case, without the question sentence
    findings: list[PhenotypeAnnotation]
    sex: str
    onset: str | None


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
    """The first known onset term of the profile, else one the disease name implies, else None."""
    onset = next((o for o in profile.onset if o in _ONSET_AGES), None)
    if onset is None:
        name = profile.name.lower()
        onset = next((term for word, term in _NAME_ONSETS if re.search(rf"\b{word}\b", name)), None)
    return onset


def person(profile: DiseaseProfile, sex: str, rng: random.Random) -> tuple[str, str | None, str]:
    """("A 7-year-old boy", onset name, onset clause) from the onset (see ``onset_of``); with
    no onset known, no age is stated ("A male patient")."""
    onset = onset_of(profile)
    if onset is None:
        return f"A {'male' if sex == 'male' else 'female'} patient", None, ""
    unit, low, high, clause = _ONSET_AGES[onset]
    child = {"male": "boy", "female": "girl"}[sex]
    adult = {"male": "man", "female": "woman"}[sex]
    if unit == "newborn":
        return f"A newborn {child}", onset, clause
    age = rng.randint(low, high)
    if unit == "day":
        return f"A {age}-day-old {child}", onset, clause
    if unit == "month":
        return f"A {age}-month-old {child}", onset, clause
    return f"A {age}-year-old {child if age < 18 else adult}", onset, clause


def sample_findings(profile: DiseaseProfile, sex: str, rng: random.Random,
                    ic: Callable[[str], float], min_findings: int = MIN_FINDINGS,
                    max_findings: int = MAX_FINDINGS) -> list[PhenotypeAnnotation]:
    """Phenotypes drawn by frequency (see the module docstring), in a random order."""
    allowed = [p for p in profile.phenotypes if p.sex in (None, sex)]
    drawn = [p for p in allowed
             if rng.random() < (p.frequency if p.frequency is not None else UNKNOWN_FREQUENCY)]
    if len(drawn) > max_findings:
        drawn = sorted(drawn, key=lambda p: (-ic(p.hpo_id), p.hpo_id))[:max_findings]
    if len(drawn) < min_findings:
        chosen = {p.hpo_id for p in drawn}
        rest = sorted((p for p in allowed if p.hpo_id not in chosen),
                      key=lambda p: (-(p.frequency if p.frequency is not None else UNKNOWN_FREQUENCY),
                                     -ic(p.hpo_id), p.hpo_id))
        drawn += rest[: min_findings - len(drawn)]
    rng.shuffle(drawn)
    return drawn


def _join(names: list[str]) -> str:
    names = [n[0].lower() + n[1:] if n[:2] != n[:2].upper() else n for n in names]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def build_vignette(profile: DiseaseProfile, rng: random.Random, ic: Callable[[str], float]) -> Vignette | None:
    """A case for ``profile`` or None when it has too few usable phenotypes."""
    sex = choose_sex(profile, rng)
    findings = sample_findings(profile, sex, rng, ic)
    if len(findings) < MIN_FINDINGS:
        return None
    who, onset, clause = person(profile, sex, rng)
    verb = rng.choice(["is evaluated for", "is brought for evaluation of", "presents with"]) \
        if not who.startswith("A newborn") else "is examined because of"
    text = f"{who} {verb} {_join([f.name for f in findings[:2]])}."
    if len(findings) > 2:
        text += f" Further evaluation shows {_join([f.name for f in findings[2:]])}."
    if clause:
        text += f" {clause}"
    return Vignette(text=text, findings=findings, sex=sex, onset=onset)
