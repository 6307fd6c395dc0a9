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
    the record shares word n-grams (``ngram_size``, default 13, the GPT-3 decontamination size)
    of its normalised stem + option words with an evaluation item, and the words inside shared
    n-grams make up at least ``ngram_min_coverage`` (default 0.3) of the shorter of the two
    texts. N-grams found in ``boilerplate_min_items`` or more distinct evaluation items are
    template text and never count. Why both guards: USMLE-style vignettes share 13-word phrases
    without being the same question ("... year old man comes to the emergency department because
    of a 4 day ...", "... pulse oximetry on room air shows an oxygen saturation of 97 ..."). On the
    real pools (checked pair by pair) different questions that share such phrases cover at most
    0.26 of the shorter text, rewordings of an evaluation question 0.35-1.0; one loose rewrite (a
    needle-stick case turned into true/false items, 0.20) falls below and is kept.
    ``ngram_min_coverage=0`` gives the plain any-shared-n-gram rule.

Building the index over the 8,617 question items of the shared suite (690k n-grams) takes 2-3 s
of one CPU core; a query costs one normalisation and a few dict lookups (about 40 us).
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from dataclasses import dataclass
from typing import Iterable, Literal, Sequence

from medssr_nemo.data.eval_suite import load_eval_suite
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
    coverage: float | None = None   # ngram overlap: share of words inside shared n-grams


class Decontaminator:
    """An index over evaluation items, built once, queried per training record."""

    def __init__(
        self,
        eval_records: Iterable[QuestionRecord],
        extra_ids: Iterable[str] = (),
        ngram_size: int = 13,
        ngram_min_coverage: float = 0.3,
        min_specific_stem_words: int = 8,
        boilerplate_min_items: int = 3,
    ) -> None:
        if ngram_size < 1:
            raise ValueError(f"ngram_size must be >= 1, got {ngram_size}")
        if not 0.0 <= ngram_min_coverage <= 1.0:
            raise ValueError(f"ngram_min_coverage must be in [0, 1], got {ngram_min_coverage}")
        if boilerplate_min_items < 2:
            raise ValueError(f"boilerplate_min_items must be >= 2 (an n-gram in one item is never "
                             f"boilerplate), got {boilerplate_min_items}")
        self.ngram_size = ngram_size
        self.ngram_min_coverage = ngram_min_coverage
        self.min_specific_stem_words = min_specific_stem_words
        self.boilerplate_min_items = boilerplate_min_items
        self._ids: set[str] = set(extra_ids)
        self._full_text: dict[tuple[str, tuple[str, ...]], str] = {}
        self._stems: dict[str, list[tuple[str, frozenset[str]]]] = {}
        self._eval_num_words: dict[str, int] = {}
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
            words = self._words(stem_words, options)
            self._eval_num_words[record.id] = max(len(words), 1)
            gram_sets.append(set(self._ngrams(words)))
        self.num_items = len(records)
        # Counted and owned with C-level Counter/dict updates: a Python loop per n-gram is 3x slower.
        item_count: Counter[int] = Counter()
        owner: dict[int, str] = {}
        for record, grams in zip(reversed(records), reversed(gram_sets)):
            item_count.update(grams)
            owner.update(dict.fromkeys(grams, record.id))  # reversed: the first item wins
        shared = {g for g, count in item_count.items() if count > 1}
        boilerplate = {g for g in shared if item_count[g] >= boilerplate_min_items}
        self._multi_owner: dict[int, tuple[str, ...]] = {}
        specific_shared = shared - boilerplate      # once, not once per evaluation item
        for record, grams in zip(records, gram_sets):
            for gram in grams & specific_shared:
                self._multi_owner[gram] = (*self._multi_owner.get(gram, ()), record.id)
        for gram in shared:
            del owner[gram]
        self._owner = owner                     # n-grams of exactly one evaluation item
        self.num_boilerplate_ngrams = len(boilerplate)

    @staticmethod
    def _words(stem_words: list[str], options: Sequence[str]) -> list[str]:
        return stem_words + [w for option in options for w in option.split()]

    def _ngrams(self, words: list[str]) -> list[int]:
        """Hashes of the word n-grams of ``words``, by start position (process-local hashes)."""
        n = self.ngram_size
        return [hash(tuple(words[i:i + n])) for i in range(len(words) - n + 1)]

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
        return self._ngram_overlap(self._words(stem_words, options))

    def _ngram_overlap(self, words: list[str]) -> Contamination | None:
        covered: dict[str, set[int]] = {}       # evaluation id -> query word positions it shares
        n = self.ngram_size
        for start, gram in enumerate(self._ngrams(words)):
            single = self._owner.get(gram)
            for eval_id in (single,) if single is not None else self._multi_owner.get(gram, ()):
                covered.setdefault(eval_id, set()).update(range(start, start + n))
        best: Contamination | None = None
        for eval_id, positions in covered.items():
            coverage = len(positions) / min(len(words), self._eval_num_words[eval_id])
            if coverage >= self.ngram_min_coverage and (best is None or coverage > best.coverage):
                best = Contamination("ngram overlap", eval_id, round(min(coverage, 1.0), 4))
        return best

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


def eval_decontaminator(root: str | None = None, **options: float) -> Decontaminator:
    """A ``Decontaminator`` over every item of the evaluation suite under ``root`` (default:
    the shared data root); ``options`` are the constructor's knobs."""

    suite = load_eval_suite(root)
    return Decontaminator(suite.records, extra_ids=suite.case_ids, **options)
