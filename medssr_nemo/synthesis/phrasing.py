"""HPO term labels as a clinician would write them in a case: a small curated map, then rules.

HPO labels are catalogue headings: grouping terms ("Aplasia/Hypoplasia of the thymus"), inverted
qualifiers ("Intellectual disability, severe"), morphology suffixes ("Abnormal mitral valve
morphology"), laboratory headings ("Elevated circulating creatine kinase concentration") and
singular lesion names ("Papule"). Read verbatim in a vignette they mark the question as
machine-made and can read wrongly ("aplasia/Hypoplasia"). ``clinical_phrase`` rewrites a label
into lower-case running text:

- curated map first (``CURATED``);
- "Aplasia/Hypoplasia of the X" -> "aplasia or hypoplasia of the X"; "Abnormality of X" ->
  "abnormalities of X"; "X, severe" -> "severe X";
- "Abnormal X morphology" -> "a structural abnormality of the X" when X ends in a noun (an
  adjective, "Abnormal vertebral morphology", or a cell, "Abnormal eosinophil morphology", keeps
  the label: "abnormal eosinophil morphology" is how a laboratory reports it);
- "Increased / Decreased / Abnormal [circulating|serum|urinary|CSF] X concentration|level" ->
  "elevated / low / abnormal [...] X levels";
- a skin lesion or a paired part named in the singular ("Papule", "Skin vesicle", "Sparse
  eyebrow", "Natal tooth") -> the plural a case uses ("papules", "skin vesicles", "sparse
  eyebrows", "natal teeth").

``is_vague`` says when a label is a grouping heading too unspecific to put in a case at all.
"""

from __future__ import annotations

import re

# labels whose rule-based rewrite would still read badly
CURATED: dict[str, str] = {
    "Aplasia/Hypoplasia of the thymus": "thymic aplasia or hypoplasia",
    "Aplasia/Hypoplasia of the corpus callosum": "agenesis or hypoplasia of the corpus callosum",
    "Aplasia/Hypoplasia of the cerebellum": "cerebellar aplasia or hypoplasia",
    "Aplasia/Hypoplasia of the lungs": "pulmonary aplasia or hypoplasia",
    "Aplasia/Hypoplasia of the nipples": "absent or hypoplastic nipples",
    "Aplasia/Hypoplasia of the eyebrow": "sparse or absent eyebrows",
    "Aplasia/Hypoplasia of the thumb": "absent or hypoplastic thumbs",
    "Abnormality of metabolism/homeostasis": "a metabolic disturbance",
    "Abnormal cranial suture/fontanelle morphology": "abnormal cranial sutures and fontanelles",
    "Hemiplegia/hemiparesis": "hemiparesis",
    "Cone/cone-rod dystrophy": "cone-rod dystrophy",
    "Reduced FEV1/FVC ratio": "a reduced FEV1/FVC ratio",
    "Limited knee flexion/extension": "limited knee movement",
    "EEG abnormality": "an abnormal EEG",
    "EMG abnormality": "an abnormal EMG",
    "High, narrow palate": "a high, narrow palate",
    "Global developmental delay": "global developmental delay",
    "Autosomal recessive inheritance": "autosomal recessive inheritance",
    "Failure to thrive": "failure to thrive",
    "Mentalretardation": "intellectual disability",
    "Female external genitalia in individual with 46,XY karyotype": "female external genitalia with a 46,XY karyotype",
}
# trailing qualifiers HPO writes after a comma ("Intellectual disability, severe")
_QUALIFIERS = {"severe", "mild", "moderate", "profound", "borderline", "progressive", "bilateral",
               "unilateral", "generalized", "congenital", "episodic", "recurrent", "male", "female",
               "partial", "complete", "transient", "persistent", "intermittent", "diffuse", "focal"}
_APLASIA = re.compile(r"^Aplasia/Hypoplasia (?:of|involving) (?:the )?(.+)$", re.IGNORECASE)
_ABNORMALITY_OF = re.compile(r"^Abnormality of ((?:the )?.+)$")
_INVERTED = re.compile(r"^(.+?), ([a-z ]+)$")
_ACRONYM = re.compile(r"^[A-Z0-9]{2,}")
_MORPHOLOGY = re.compile(r"^Abnormal (.+) morphology$")
# words after which "Abnormal X morphology" stays as it is: adjectives ("vertebral"), cells, fibres
_KEEP_MORPHOLOGY = re.compile(r"(al|ar|ic|ous|ary|ile|ive|cell|cells|fiber|fibers|fibre|fibres|phil|phils|cyte|"
                              r"cytes|let|lets|sperm|mitochondria|fluid)$", re.IGNORECASE)
_LEVEL = re.compile(r"^(Increased|Elevated|High|Decreased|Reduced|Low|Abnormal) (.+) (?:concentration|level)s?( or activity)?$")
_LEVEL_WORD = {"Increased": "elevated", "Elevated": "elevated", "High": "elevated", "Decreased": "low",
               "Reduced": "low", "Low": "low", "Abnormal": "abnormal"}
# singular nouns a case writes in the plural when they end a label
_PLURALS = {"papule": "papules", "macule": "macules", "pustule": "pustules", "vesicle": "vesicles",
            "nodule": "nodules", "plaque": "plaques", "bulla": "bullae", "comedo": "comedones", "wheal": "wheals",
            "eyebrow": "eyebrows", "eyelash": "eyelashes", "toe": "toes", "finger": "fingers",
            "thumb": "thumbs", "tooth": "teeth", "nipple": "nipples", "ear": "ears", "hand": "hands",
            "foot": "feet"}
_PAIRED = {"eyebrow", "eyelash", "toe", "finger", "thumb", "tooth", "nipple", "ear", "hand", "foot"}
# vague grouping headings: a case never says "the patient presents with abnormality of movement"
_VAGUE = re.compile(r"^(Abnormality of|Abnormal .* physiology$|Aplasia/Hypoplasia involving|"
                    r"Morphological (central )?nervous system abnormality|Phenotypic abnormality)")


def _lower_first(text: str) -> str:
    """Lower-case the first letter unless the first word is an acronym ("EEG", "CSF") or has an
    upper-case letter further in (an eponym such as "Arnold-Chiari")."""
    first = text.split(" ", 1)[0]
    if _ACRONYM.match(first) or any(ch.isupper() for ch in first[1:]):
        return text
    return text[:1].lower() + text[1:]


def clinical_phrase(label: str) -> str:
    """A label as running text in a case: curated map first, then the rules in the module
    docstring. Never returns an empty string."""
    label = label.strip()
    if label in CURATED:
        return CURATED[label]
    text = label
    match = _APLASIA.match(text)
    if match:   # the grouping covers both: keep both, so a "not a feature" key means what HPO says
        text = f"aplasia or hypoplasia of the {match.group(1)}"
    else:
        match = _ABNORMALITY_OF.match(text)
        if match:
            text = f"abnormalities of {match.group(1)}"
    match = _MORPHOLOGY.match(text)
    if match and (not _KEEP_MORPHOLOGY.search(match.group(1)) or match.group(1).lower().endswith(" ear")
                  or match.group(1).lower() == "ear"):
        text = f"a structural abnormality of the {match.group(1)}"
    match = _LEVEL.match(text)
    if match:
        text = f"{_LEVEL_WORD[match.group(1)]} {match.group(2)} levels{match.group(3) or ''}"
    text = _plural(text)
    match = _INVERTED.match(text)
    if match and set(match.group(2).split()) <= _QUALIFIERS:
        text = f"{match.group(2)} {_lower_first(match.group(1))}"
    text = re.sub(r"(?<=[a-z])/(?=[a-z])", " or ", text)
    text = re.sub(r"\s+", " ", text).strip()
    return _lower_first(text) or label


def _plural(text: str) -> str:
    """The last word in the plural when it is a lesion ("Papule") or, after a qualifier, a paired
    part ("Sparse eyebrow"; a bare "Ear" is one ear)."""
    words = text.split(" ")
    last = words[-1].lower()
    if " of " in text or len(words) > 3:     # "of the 3rd toe" names one part
        return text
    if last in _PLURALS and (last not in _PAIRED or len(words) > 1):
        words[-1] = _PLURALS[last]
    return " ".join(words)


def is_vague(label: str) -> bool:
    """True for grouping headings too unspecific to present as a finding in a case."""
    return bool(_VAGUE.match(label))


def option_phrase(label: str) -> str:
    """A finding as an answer option: the clinical phrase with a capital first letter."""
    text = clinical_phrase(label)
    return text[:1].upper() + text[1:]
