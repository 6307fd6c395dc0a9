"""Disease names and synonyms, normalised, and the index that finds them in question text.

The index measures how much of a question set is about rare diseases (the paper reports about 3%
for real benchmarks): a question counts as rare when its text names a knowledge-base disease.
Names that are also HPO phenotype terms ("Obesity", "Asthma") are left out of the index, since
in a question they usually denote a common finding, and very short names (abbreviations) are
left out because they collide with ordinary words.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from medssr_nemo.knowledge.interfaces import DiseaseProfile

_NON_WORD = re.compile(r"[^0-9a-z]+")
# a subtype designator: a number with an optional letter ("15", "1C", "2B1"), a roman numeral
# ("IV", with a letter only in upper case: "IIIA", "Ia"), or a capital letter with optional digits
# ("Q", "D1": complementation groups, "Hemophilia A")
_DESIGNATOR = r"(?:\d+[a-z]?\d*|[ivx]+|(?-i:[IVX]+[A-Za-z])|(?-i:[A-Z]\d*))"
# one or more of them at the end of a name, each with an optional keyword ("type 1C",
# "complementation group D1", ", subtype A")
_TRAILING_SUBTYPE = re.compile(
    rf"(?:,?\s+(?:(?:complementation\s+)?group\s+|(?:sub)?type\s+|form\s+|class\s+)?{_DESIGNATOR})+$",
    re.IGNORECASE)
_PARENS = re.compile(r"\s*\(([^()]*)\)\s*")


def normalise(text: str) -> str:
    """Lower case, accents folded, every run of non-alphanumerics a single space."""
    if not text.isascii():
        text = unicodedata.normalize("NFKD", text)
        text = "".join(ch for ch in text if not unicodedata.combining(ch))
    return _NON_WORD.sub(" ", text.lower()).strip()


def name_variants(name: str) -> list[str]:
    """Same-meaning spellings of a knowledge-base disease name.

    ``Cri du Chat Syndrome (5p deletion)`` -> the name without the parenthesis and the
    parenthesised text; ``Ovalocytosis, hereditary hemolytic`` (OMIM's inverted style, only when
    no part holds a digit) -> ``hereditary hemolytic ovalocytosis``.
    """
    variants = []
    inner = _PARENS.findall(name)
    bare = re.sub(r"\s+([,;])", r"\1", _PARENS.sub(" ", name)).strip()
    if bare != name:
        variants.append(bare)
        # a parenthesis names the disease ("22q11 deletion syndrome (DiGeorge syndrome)") or only
        # qualifies it ("(complete)", "(Type 1)", "(WBS)"): keep it when it reads like a name
        variants += [part.strip() for text in inner for part in text.split("/")
                     if len(part.split()) >= 2 and not _TRAILING_SUBTYPE.fullmatch(" " + part.strip())]
    parts = [p.strip() for p in bare.split(",")]
    if len(parts) == 2 and all(parts) and not any(ch.isdigit() for ch in bare):
        variants.append(f"{parts[1]} {parts[0][0].lower()}{parts[0][1:]}")
    seen, unique = {normalise(name)}, []
    for variant in variants:
        key = normalise(variant)
        if key and key not in seen:
            seen.add(key)
            unique.append(variant)
    return unique


def family_name(name: str) -> str:
    """The name without its trailing subtype designators, normalised: diseases of one family
    share it ("Joubert syndrome 15" -> "joubert syndrome", "Fanconi anemia complementation group
    D1" -> "fanconi anemia", "Charcot-Marie-Tooth disease type 1C" -> "charcot marie tooth
    disease")."""
    return normalise(_TRAILING_SUBTYPE.sub("", _PARENS.sub(" ", name)).strip(" ,"))


@dataclass
class DiseaseNameIndex:
    """Normalised disease name -> disease ids, searched by whole words."""

    names: dict[str, list[str]]
    excluded_as_phenotype: int = 0
    excluded_too_short: int = 0
    max_words: int = 1
    lengths_by_first_word: dict[str, list[int]] = field(default_factory=dict)  # longest first

    def __post_init__(self) -> None:
        if not self.lengths_by_first_word:
            lengths: dict[str, set[int]] = {}
            for key in self.names:
                words = key.split()
                lengths.setdefault(words[0], set()).add(len(words))
            self.lengths_by_first_word = {w: sorted(v, reverse=True) for w, v in lengths.items()}

    @classmethod
    def build(cls, profiles: Iterable[DiseaseProfile], phenotype_names: Iterable[str] = (),
              min_chars: int = 8) -> "DiseaseNameIndex":
        """Index the name, synonyms and family name (subtype number dropped) of every profile
        marked rare. A name equal to a phenotype term name (``phenotype_names``) or shorter than
        ``min_chars`` characters is not indexed."""
        blocked = {normalise(n) for n in phenotype_names}
        names: dict[str, set[str]] = {}
        as_phenotype = too_short = 0
        for profile in profiles:
            if not profile.rare:
                continue
            candidates = {normalise(n) for n in [profile.name, *profile.synonyms]}
            candidates.add(family_name(profile.name))
            for key in candidates:
                if not key:
                    continue
                if len(key) < min_chars:
                    too_short += 1
                elif key in blocked:
                    as_phenotype += 1
                else:
                    names.setdefault(key, set()).add(profile.id)
        max_words = max((len(k.split()) for k in names), default=1)
        return cls({k: sorted(v) for k, v in names.items()}, as_phenotype, too_short, max_words)

    def find(self, text: str) -> list[str]:
        """Indexed names found in ``text`` on word boundaries, longest match first at each position,
        matches never overlapping."""
        words = normalise(text).split()
        found, i = [], 0
        while i < len(words):
            hit = 0
            for length in self.lengths_by_first_word.get(words[i], ()):
                if i + length <= len(words) and " ".join(words[i:i + length]) in self.names:
                    hit = length
                    break
            if hit:
                found.append(" ".join(words[i:i + hit]))
                i += hit
            else:
                i += 1
        return found


@dataclass
class RareRatioReport:
    total: int
    rare: int
    top_names: list[tuple[str, int]] = field(default_factory=list)

    @property
    def ratio(self) -> float:
        return self.rare / self.total if self.total else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"total": self.total, "rare": self.rare, "ratio": round(self.ratio, 6),
                "top_names": [list(pair) for pair in self.top_names]}


def _text_of(item: Any, include_options: bool) -> str:
    if isinstance(item, str):
        return item
    text = getattr(item, "question", "")
    if include_options:
        text += "\n" + "\n".join(getattr(item, "options", []))
    return text


def measure_rare_ratio(records: Sequence[Any], knowledge: Any, include_options: bool = False,
                       min_chars: int = 8, top: int = 20) -> RareRatioReport:
    """Share of ``records`` (question records or plain strings) whose question text names a rare
    disease of ``knowledge`` (a knowledge source with disease profiles, or a ``DiseaseNameIndex``).

    By default only the stem counts: on the shared evaluation suite that gives 2.6% (the paper
    reports about 3% for real benchmarks); with the options as well, 10%, because differential
    diagnoses list rare diseases as distractors."""
    index = knowledge if isinstance(knowledge, DiseaseNameIndex) else knowledge.name_index(min_chars)
    hits: Counter[str] = Counter()
    rare = 0
    for item in records:
        found = index.find(_text_of(item, include_options))
        if found:
            rare += 1
            hits.update(set(found))
    return RareRatioReport(total=len(records), rare=rare, top_names=hits.most_common(top))
