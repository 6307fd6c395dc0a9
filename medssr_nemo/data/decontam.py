"""Decontamination: does a training question repeat an evaluation question?

Three tests, in this order (the first that fires is the reason):

``exact id``
    the record's id is an evaluation id (``medmcqa-<dev id>``, ``pubmedqa-<pmid>``, ...).
``exact text``
    after normalisation (NFKC, lower case, every run of punctuation/whitespace folded to one
    space) the stem AND the set of options equal an evaluation item's (option order ignored:
    a shuffled copy is still the same question); or the stems alone are equal and either the stem
    is specific (``min_specific_stem_words`` words or more) or at least half of the evaluation
    item's options reappear. The last clause keeps generic stems such as "Which of the following
    is true?" with unrelated options from counting as copies, while "Skeletal muscles" with three
    of the same four options still does.
``ngram overlap``
    the record shares a word n-gram (``ngram_size``, default 13, the GPT-3 decontamination size)
    of its normalised stem + option words with an evaluation item. N-grams that occur in
    ``boilerplate_min_items`` or more distinct evaluation items are template text, not item
    content ("... oxygen saturation is 98 on room air physical exam is notable ...", "which of
    the following is the most likely cause of this patient s ..."), and are ignored; measured on
    the shared suite such n-grams are vital-sign and lab-panel phrases and question leads.

Building the index over the ~11k items of the shared suite takes about 2 s; a query costs one
normalisation and a few set lookups.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from dataclasses import dataclass
from typing import Iterable, Literal, Sequence

from medssr_nemo.records import QuestionRecord

Reason = Literal["exact id", "exact text", "ngram overlap"]
REASONS: tuple[Reason, ...] = ("exact id", "exact text", "ngram overlap")

_NON_WORD = re.compile(r"[\W_]+")


def normalise_words(text: str) -> list[str]:
    """Lower-cased words of ``text`` with punctuation and whitespace folded away."""
    return _NON_WORD.sub(" ", unicodedata.normalize("NFKC", text).lower()).split()


def normalise_text(text: str) -> str:
    return " ".join(normalise_words(text))


@dataclass(frozen=True)
class Contamination:
    """Why a record is contaminated and which evaluation item it repeats."""

    reason: Reason
    eval_id: str


class Decontaminator:
    """An index over evaluation items, built once, queried per training record."""

    def __init__(
        self,
        eval_records: Iterable[QuestionRecord],
        extra_ids: Iterable[str] = (),
        ngram_size: int = 13,
        min_specific_stem_words: int = 8,
        boilerplate_min_items: int = 3,
    ) -> None:
        if ngram_size < 1:
            raise ValueError(f"ngram_size must be >= 1, got {ngram_size}")
        if boilerplate_min_items < 2:
            raise ValueError(f"boilerplate_min_items must be >= 2 (an n-gram in one item is never "
                             f"boilerplate), got {boilerplate_min_items}")
        self.ngram_size = ngram_size
        self.min_specific_stem_words = min_specific_stem_words
        self.boilerplate_min_items = boilerplate_min_items
        self._ids: set[str] = set(extra_ids)
        self._full_text: dict[tuple[str, tuple[str, ...]], str] = {}
        self._stems: dict[str, list[tuple[str, frozenset[str]]]] = {}
        records = list(eval_records)
        gram_sets: list[set[int]] = []
        for record in records:
            self._ids.add(record.id)
            stem_words = normalise_words(record.question)
            stem = " ".join(stem_words)
            options = [normalise_text(o) for o in record.options]
            self._full_text.setdefault((stem, tuple(sorted(options))), record.id)
            if stem:
                self._stems.setdefault(stem, []).append((record.id, frozenset(options)))
            gram_sets.append(self._ngrams(stem_words, options))
        self.num_items = len(records)
        # counted and owned with C-level dict/Counter updates: a Python loop per n-gram is 3x slower
        item_count: Counter[int] = Counter()
        owner: dict[int, str] = {}
        for record, grams in zip(reversed(records), reversed(gram_sets)):
            item_count.update(grams)
            owner.update(dict.fromkeys(grams, record.id))  # reversed: the first item wins
        boilerplate = [g for g, count in item_count.items() if count >= boilerplate_min_items]
        for gram in boilerplate:
            del owner[gram]
        self._ngram_owner = owner
        self.num_boilerplate_ngrams = len(boilerplate)

    def _ngrams(self, stem_words: list[str], options: Sequence[str]) -> set[int]:
        """Hashes of the word n-grams of stem + options (hashes only live in this process)."""
        words = stem_words + [w for option in options for w in option.split()]
        n = self.ngram_size
        return {hash(tuple(words[i:i + n])) for i in range(len(words) - n + 1)}

    def check(self, record: QuestionRecord) -> Contamination | None:
        """The first test that ``record`` fails, with the evaluation id it matched, or None."""
        if record.id in self._ids:
            return Contamination("exact id", record.id)
        stem_words = normalise_words(record.question)
        stem = " ".join(stem_words)
        options = [normalise_text(o) for o in record.options]
        owner = self._full_text.get((stem, tuple(sorted(options))))
        if owner is not None:
            return Contamination("exact text", owner)
        option_set = set(options)
        for eval_id, eval_options in self._stems.get(stem, ()):
            if len(stem_words) >= self.min_specific_stem_words or 2 * len(eval_options & option_set) >= len(eval_options):
                return Contamination("exact text", eval_id)
        for gram in self._ngrams(stem_words, options):
            owner = self._ngram_owner.get(gram)
            if owner is not None:
                return Contamination("ngram overlap", owner)
        return None

    def is_contaminated(self, record: QuestionRecord) -> Reason | None:
        """The reason (``exact id``, ``exact text``, ``ngram overlap``) or None when clean."""
        found = self.check(record)
        return found.reason if found else None

    def split(self, records: Iterable[QuestionRecord]) -> tuple[list[QuestionRecord], list[tuple[QuestionRecord, Contamination]]]:
        """(clean records, [(contaminated record, why)]), both in input order."""
        clean, removed = [], []
        for record in records:
            found = self.check(record)
            if found is None:
                clean.append(record)
            else:
                removed.append((record, found))
        return clean, removed


def eval_decontaminator(root: str | None = None, **options: int) -> Decontaminator:
    """A ``Decontaminator`` over every item of the evaluation suite under ``root`` (default:
    the shared data root); ``options`` are the constructor's knobs."""
    from medssr_nemo.data.eval_suite import load_eval_suite

    suite = load_eval_suite(root)
    return Decontaminator(suite.records, extra_ids=suite.case_ids, **options)
