"""What makes a case's patient coherent: the sex a finding needs, the age a finding needs, and the
age an onset allows. Shared by the vignette builder (to avoid incoherent cases) and the audit (to
count them in any synthetic set).

Sex: a finding is male-only when it lies under the male genitalia / male reproductive physiology
branches of HPO or its label says "male" (``Male hypogonadism``, ``Gynecomastia``), female-only
likewise; the annotation's own ``sex`` column wins when set.
Age: post-pubertal findings (infertility, menstrual and erectile problems, abnormal
spermatogenesis, libido, premature ovarian insufficiency, dementia) need a patient of at least
``ADULT_FINDING_MIN_AGE`` years; a newborn never shows them. A developmental delay is a milestone
missed after it fell due, so no newborn shows one: motor and global delays (under HPO's
"Neurodevelopmental delay", or labels such as "Delayed ability to sit", "Motor delay") need
``MILESTONE_MIN_AGE``, speech, language and social delays ``SPEECH_MIN_AGE``. Intellectual and
learning disability need ``COGNITIVE_MIN_AGE``: below it the finding is a developmental delay.
Disorders of sex development: the patient is described as the sex they present as. "Female
external genitalia in individual with 46,XY karyotype" is a phenotypically female patient (a girl
or woman, whatever the annotation's sex column says about the karyotype); ambiguous genitalia and
sex reversal leave the sex unassigned, so they never appear in a case that calls the patient a boy
or a girl (and every case does).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from medssr_nemo.knowledge.obo import Ontology

ADULT_FINDING_MIN_AGE = 14.0      # years
# the first gross-motor milestones fall due in the first months (head control by about 4 months,
# sitting by about 6): before 6 months a "delay" cannot yet be told from normal variation
MILESTONE_MIN_AGE = 0.5           # years
# first words are due around 12 months and a delay is called from about 18 months
SPEECH_MIN_AGE = 1.5              # years
MILESTONE_ROOTS = ("HP:0012758",)  # Neurodevelopmental delay (global, motor, speech, social)
# intellectual functioning cannot be assessed reliably in infants and toddlers; DSM-5 calls the
# same picture "global developmental delay" below 5 years, and a learning disability shows at school
COGNITIVE_MIN_AGE = 5.0           # years
COGNITIVE_ROOTS = ("HP:0001249", "HP:0001328")  # Intellectual disability, Specific learning disability
_COGNITIVE_WORDS = re.compile(r"\b(intellectual disability|mental retardation|mentalretardation|"
                              r"learning disabilit\w*|dyslexia|dyscalculia)\b", re.I)
_MILESTONE_WORDS = re.compile(r"\b(delayed (ability|speech|walking|sitting|motor|social|development)\w*|"
                              r"(developmental|motor|speech|language|psychomotor) (delay|retardation)|"
                              r"milestones?)\b", re.I)
_SPEECH_WORDS = re.compile(r"\b(speech|language|spoken|social|smiling|play)\b", re.I)
# 46,XY with female external genitalia: presents, and is raised, as a girl
FEMALE_PHENOTYPE_TERMS = ("HP:0008730",)
_FEMALE_PHENOTYPE_WORDS = re.compile(r"\bfemale (external genitalia|phenotype)\b.*\b46,XY\b", re.I)
# ambiguous genitalia (and ovotestis, true hermaphroditism), sex reversal: no sex assigned
UNASSIGNED_SEX_ROOTS = ("HP:0000062", "HP:0012245")
PERINATAL_MAX_AGE = 1.0           # years: prenatal/birth findings are presented only in infants
PERINATAL_ROOTS = ("HP:0001197",)  # Abnormality of prenatal development or birth
MALE_ROOTS = ("HP:0010461", "HP:0012874", "HP:0000026", "HP:0000771", "HP:0003251")
FEMALE_ROOTS = ("HP:0010460", "HP:0030012", "HP:0000134", "HP:0008222", "HP:0000140", "HP:0008209")
ADULT_ROOTS = ("HP:0000789", "HP:0000144", "HP:0000140", "HP:0100639", "HP:0008669", "HP:0046504",
               "HP:0008209", "HP:0000726", "HP:0003251", "HP:0008222")
_MALE_WORDS = re.compile(r"\b(male|men|testes|testis|testicular|scrot\w*|penis|penile|micropenis|prostat\w*|"
                         r"sperm\w*|azoospermia|oligospermia|cryptorchidism|hypospadias|gynecomastia)\b", re.I)
_FEMALE_WORDS = re.compile(r"\b(female|women|uter\w*|ovar\w*|vagin\w*|vulv\w*|menstru\w*|amenorrh\w*|"
                           r"menarche|menorrh\w*|clitor\w*|labia\w*|cervix|cervical insufficiency)\b", re.I)
_ADULT_WORDS = re.compile(r"\b(infertil\w*|fertility|menstru\w*|menorrh\w*|menopaus\w*|sperm\w*|libido|erectile|"
                          r"impotence|dementia)\b", re.I)

# age bands: onset term name -> (youngest, oldest) age at presentation in years
ONSET_YEARS: dict[str, tuple[float, float]] = {
    "Antenatal onset": (0, 0), "Embryonal onset": (0, 0), "Fetal onset": (0, 0),
    "Late first trimester onset": (0, 0), "Second trimester onset": (0, 0), "Third trimester onset": (0, 0),
    "Congenital onset": (0, 0), "Neonatal onset": (0, 28 / 365), "Infantile onset": (1 / 12, 1.0),
    "Pediatric onset": (1.0, 16.0), "Childhood onset": (1.0, 8.0), "Juvenile onset": (5.0, 17.0),
    "Adult onset": (16.0, 70.0), "Young adult onset": (16.0, 41.0), "Early young adult onset": (16.0, 26.0),
    "Intermediate young adult onset": (24.0, 33.0), "Late young adult onset": (31.0, 41.0),
    "Middle age onset": (39.0, 61.0), "Late onset": (59.0, 90.0), "Puerpural onset": (18.0, 45.0),
    "Perimenopausal onset": (44.0, 56.0), "Postmenopausal onset": (50.0, 80.0),
}


@dataclass(frozen=True)
class Patient:
    """Age in years (0 for a newborn) and sex, as a stem states them."""

    age_years: float | None
    sex: str | None

    @property
    def is_newborn(self) -> bool:
        return self.age_years is not None and self.age_years < 28 / 365


_AGE = re.compile(r"\b(\d+(?:\.\d+)?)[- ](year|month|week|day)s?[- ]old\b", re.I)
_NEWBORN = re.compile(r"\b(newborn|neonate)\b", re.I)
_MALE = re.compile(r"\b(boy|man|male|gentleman|his|he)\b", re.I)
_FEMALE = re.compile(r"\b(girl|woman|female|lady|her|she)\b", re.I)
_PERINATAL_WORDS = re.compile(r"\b(fetal|foetal|prenatal|antenatal|in utero|intrauterine|oligohydramnios|"
                              r"polyhydramnios|hydrops fetalis|neonatal|newborn|at birth|premature birth|"
                              r"preterm birth)\b", re.I)
_UNIT_YEARS = {"year": 1.0, "month": 1 / 12, "week": 7 / 365, "day": 1 / 365}


def read_patient(stem: str) -> Patient:
    """The stated age and sex of a stem's patient (None when not stated)."""
    match = _AGE.search(stem)
    age = float(match.group(1)) * _UNIT_YEARS[match.group(2).lower()] if match else None
    if age is None and _NEWBORN.search(stem):
        age = 0.0
    # the first sex word of the first sentence is the patient's ("A woman ... with male hypogonadism")
    first = stem.split(".", 1)[0]
    male, female = _MALE.search(first), _FEMALE.search(first)
    if male and female:
        sex = "male" if male.start() < female.start() else "female"
    else:
        sex = "male" if male else "female" if female else None
    return Patient(age, sex)


class PatientRules:
    """Sex and age requirements of findings, from the ontology (see the module docstring)."""

    def __init__(self, ontology: Ontology) -> None:
        self.ontology = ontology
        self._memo: dict[str, tuple[str | None, bool]] = {}
        self._perinatal: dict[str, bool] = {}
        self._min_age: dict[str, tuple[float, str] | None] = {}

    def _under(self, hpo_id: str, roots: tuple[str, ...]) -> bool:
        ancestors = self.ontology.ancestors(hpo_id) if hpo_id in self.ontology.terms else frozenset()
        return any(r in ancestors for r in roots)

    def requirements(self, hpo_id: str, label: str | None = None) -> tuple[str | None, bool]:
        """(sex the finding needs or None, whether it needs an adult)."""
        if hpo_id not in self._memo:
            name = label or self.ontology.name(hpo_id)
            male = self._under(hpo_id, MALE_ROOTS) or bool(_MALE_WORDS.search(name))
            female = self._under(hpo_id, FEMALE_ROOTS) or bool(_FEMALE_WORDS.search(name))
            sex = "male" if male and not female else "female" if female and not male else None
            adult = self._under(hpo_id, ADULT_ROOTS) or bool(_ADULT_WORDS.search(name))
            self._memo[hpo_id] = (sex, adult)
        return self._memo[hpo_id]

    def perinatal(self, hpo_id: str, label: str | None = None) -> bool:
        """True for prenatal / birth findings ("Fetal megacystis", "Polyhydramnios")."""
        if hpo_id not in self._perinatal:
            name = label or self.ontology.name(hpo_id)
            self._perinatal[hpo_id] = self._under(hpo_id, PERINATAL_ROOTS) or bool(_PERINATAL_WORDS.search(name))
        return self._perinatal[hpo_id]

    def milestone_age(self, hpo_id: str, label: str | None = None) -> tuple[float, str] | None:
        """(youngest age in years, what) for a developmental delay, else None."""
        if hpo_id not in self._min_age:
            name = label or self.ontology.name(hpo_id)
            if self._under(hpo_id, COGNITIVE_ROOTS) or hpo_id in COGNITIVE_ROOTS or _COGNITIVE_WORDS.search(name):
                self._min_age[hpo_id] = (COGNITIVE_MIN_AGE, "intellectual or learning disability")
            elif not (self._under(hpo_id, MILESTONE_ROOTS) or _MILESTONE_WORDS.search(name)):
                self._min_age[hpo_id] = None
            elif _SPEECH_WORDS.search(name):
                self._min_age[hpo_id] = (SPEECH_MIN_AGE, "speech, language or social delay")
            else:
                self._min_age[hpo_id] = (MILESTONE_MIN_AGE, "developmental delay")
        return self._min_age[hpo_id]

    def presented_sex(self, hpo_id: str, label: str | None = None) -> str | None:
        """"female" for a 46,XY patient with female external genitalia, "unassigned" for ambiguous
        genitalia and sex reversal, else None (the finding says nothing about how the patient
        presents)."""
        name = label or self.ontology.name(hpo_id)
        if hpo_id in FEMALE_PHENOTYPE_TERMS or _FEMALE_PHENOTYPE_WORDS.search(name):
            return "female"
        if self._under(hpo_id, UNASSIGNED_SEX_ROOTS):
            return "unassigned"
        return None

    def fits(self, hpo_id: str, patient: Patient, annotated_sex: str | None = None) -> str | None:
        """Why ``patient`` cannot show the finding, or None."""
        if self.perinatal(hpo_id) and patient.age_years is not None and patient.age_years > PERINATAL_MAX_AGE:
            return "prenatal or birth finding in a patient past infancy"
        milestone = self.milestone_age(hpo_id)
        if milestone and patient.age_years is not None and patient.age_years < milestone[0]:
            return (f"{milestone[1]} in a {'newborn' if patient.is_newborn else 'patient'} younger than "
                    f"{milestone[0]:g} years")
        presented = self.presented_sex(hpo_id)
        if presented == "unassigned" and patient.sex:
            return f"finding that leaves the sex unassigned in a patient described as {patient.sex}"
        if presented == "female" and patient.sex == "male":
            return "phenotypically female 46,XY finding in a patient described as male"
        if presented:
            return None
        sex, adult = self.requirements(hpo_id)
        sex = annotated_sex or sex
        if sex and patient.sex and sex != patient.sex:
            return f"{sex}-only finding in a {patient.sex} patient"
        if adult and patient.age_years is not None and patient.age_years < ADULT_FINDING_MIN_AGE:
            return "post-pubertal finding in a child" if not patient.is_newborn else "post-pubertal finding in a newborn"
        return None


def age_fits_onset(age_years: float, onsets: list[str], slack_years: float = 1.0) -> bool:
    """True when a patient of ``age_years`` can present a disease of these onsets: at or after the
    youngest onset band's start (a case can present any time after onset; ``slack_years`` absorbs
    rounding), or no band known."""
    bands = [ONSET_YEARS[o] for o in onsets if o in ONSET_YEARS]
    if not bands:
        return True
    return age_years + slack_years >= min(low for low, _ in bands)
