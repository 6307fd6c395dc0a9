"""Leakage: a stem or an option that gives the key away.

A diagnosis stem leaks when it contains (as whole words, after normalisation):

- a name or synonym of the keyed disease;
- a gene symbol of the disease (case-sensitive whole word: symbols such as ``CAT`` are words too);
- a *distinctive* word of one of its names: a word no HPO phenotype label uses (an eponym such as
  "Glanzmann", a coined word) — one such word is enough;
- every *main* word of one of its names: the words left after dropping generic ones ("syndrome",
  "type", "autosomal", numbers...) — "evaluated for double outlet right ventricle" names "Double
  outlet right ventricle" although each word is an ordinary anatomical one.

Other types: a gene stem leaks when it contains the key gene; an inheritance stem when it names a
mode ("autosomal", "X-linked", "recessive"...); a not-expected stem when it contains the key
finding. No option other than a diagnosis key may equal a name of the keyed disease (the
"finding" that is the disease is the odd one out), and no diagnosis distractor may equal one.
"""

from __future__ import annotations

import re
from typing import Iterable, Sequence

from medssr_nemo.knowledge.interfaces import DiseaseProfile
from medssr_nemo.knowledge.names import normalise

GENERIC_WORDS = frozenset("""
syndrome syndromes disease disorder disorders deficiency type types form forms subtype group familial
congenital hereditary inherited autosomal dominant recessive x linked y mitochondrial with without and
or of the a an in to due associated related early late onset infantile juvenile adult childhood neonatal
progressive primary secondary isolated complex classic classical atypical variant variants severe mild
lethal benign malignant partial complete combined generalized generalised multiple acquired chronic
acute nonsyndromic non susceptibility to plus like sporadic
""".split())
MODE_WORDS = re.compile(r"\b(autosomal|x[- ]linked|y[- ]linked|mitochondrial|recessive|dominant|"
                        r"maternally inherited|matrilineal)\b", re.IGNORECASE)
_ROMAN = re.compile(r"^[ivxl]+$")


def _contains(haystack: str, needle: str) -> bool:
    """Whole-word containment of normalised strings."""
    return bool(needle) and f" {needle} " in f" {haystack} "


def main_words(name: str) -> list[str]:
    """The non-generic words of a disease name (numbers and roman numerals dropped)."""
    return [w for w in normalise(name).split()
            if w not in GENERIC_WORDS and not w.isdigit() and not _ROMAN.match(w) and len(w) > 1]


class LeakageChecker:
    """Finds the leaks described in the module docstring. ``phenotype_words``: every word of every
    HPO label and synonym, so words outside it count as distinctive."""

    def __init__(self, phenotype_words: Iterable[str]) -> None:
        self.phenotype_words = frozenset(phenotype_words)

    @classmethod
    def from_ontology(cls, ontology) -> "LeakageChecker":
        words = set()
        for term in ontology.terms.values():
            for text in (term.name, *term.synonyms):
                words.update(normalise(text).split())
        return cls(words)

    def names(self, profile: DiseaseProfile) -> list[str]:
        return [n for n in dict.fromkeys([profile.name, *profile.synonyms]) if normalise(n)]

    def disease_leak(self, text: str, profile: DiseaseProfile) -> str | None:
        """Why ``text`` names the disease of ``profile`` (see the module docstring), or None."""
        norm = normalise(text)
        for name in self.names(profile):
            key = normalise(name)
            if len(key) >= 4 and _contains(norm, key):
                return f"names the disease ({name!r})"
        words = set(norm.split())
        for name in self.names(profile):
            main = main_words(name)
            distinctive = [w for w in main if w not in self.phenotype_words and len(w) >= 4]
            if distinctive and words & set(distinctive):
                return f"contains a distinctive word of the disease name ({sorted(words & set(distinctive))[0]!r})"
            if main and all(w in words for w in main):
                return f"contains every main word of the disease name ({name!r})"
        gene = self.gene_leak(text, profile.genes)
        return gene

    @staticmethod
    def gene_leak(text: str, genes: Sequence[str]) -> str | None:
        for gene in genes:
            if len(gene) >= 2 and re.search(rf"(?<![A-Za-z0-9]){re.escape(gene)}(?![A-Za-z0-9])", text):
                return f"names the gene ({gene})"
        return None

    def stem_leak(self, stem: str, question_type: str | None, key_text: str,
                  profile: DiseaseProfile | None, stem_names_disease: bool = False) -> str | None:
        """Why the stem gives the key away, or None. ``stem_names_disease``: the question is about
        the named disease by design (easy gene / inheritance / not-expected stems), so only the
        key itself counts as a leak there."""
        if question_type == "gene":
            found = self.gene_leak(stem, [key_text])
            if found:
                return found
        elif question_type == "inheritance":
            match = MODE_WORDS.search(stem)
            if match:
                return f"names a mode of inheritance ({match.group(0)!r})"
        elif question_type == "not_expected":
            if _contains(normalise(stem), normalise(key_text)):
                return "contains the key finding"
        if profile is not None and (question_type == "diagnosis" or not stem_names_disease):
            return self.disease_leak(stem, profile)
        return None

    def option_leak(self, options: Sequence[str], key_index: int, question_type: str | None,
                    profile: DiseaseProfile | None) -> str | None:
        """Why an option equals a name of the keyed disease where it must not, or None."""
        if profile is None:
            return None
        names = {normalise(n) for n in self.names(profile)}
        for i, option in enumerate(options):
            if question_type == "diagnosis" and i == key_index:
                continue
            if normalise(option) in names:
                return f"option {chr(65 + i)} is the disease's own name"
        return None
