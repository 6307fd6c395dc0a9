"""Quality filters every synthetic question passes, in this order:

1. ``validity``: a non-empty stem, ``min_options``..``max_options`` options, none empty, no two
   equal (after normalisation), and a key that is one of the option letters.
2. ``decontamination``: the question must not repeat an evaluation item. The test is the data
   layer's ``Decontaminator`` (``medssr_nemo.data.decontam``: exact id, normalised exact text,
   long n-gram overlap) over every benchmark in the evaluation suite, the same index
   ``medssr data real`` uses, so synthetic and real training data obey one rule.
3. ``near_duplicate``: MinHash/LSH (``datasketch``) over word 3-gram shingles of the stem plus the
   key's text; a question whose estimated Jaccard similarity to an already kept question reaches
   ``dedup_threshold`` is dropped. The key is part of the signature and the other options are not,
   so two questions that only share a template and an option list ("What is the mode of
   inheritance of X?") still differ, while a reworded copy with the same answer does not.

A record that passes is remembered by the dedup index. ``FilterReport`` counts every drop by
filter and reason and keeps a few examples.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from medssr_nemo.knowledge.names import normalise
from medssr_nemo.records import QuestionRecord

FILTERS = ("validity", "decontamination", "near_duplicate")
MAX_EXAMPLES = 5


@dataclass
class FilterReport:
    checked: int = 0
    kept: int = 0
    dropped: dict[str, dict[str, int]] = field(default_factory=lambda: {f: {} for f in FILTERS})
    examples: dict[str, list[str]] = field(default_factory=dict)

    def drop(self, name: str, reason: str, example: str) -> None:
        self.dropped.setdefault(name, {})
        self.dropped[name][reason] = self.dropped[name].get(reason, 0) + 1
        samples = self.examples.setdefault(f"{name}: {reason}", [])
        if len(samples) < MAX_EXAMPLES:
            samples.append(example)

    def merge(self, other: "FilterReport | dict[str, Any]") -> None:
        data = other.to_dict() if isinstance(other, FilterReport) else other
        self.checked += data["checked"]
        self.kept += data["kept"]
        for name, reasons in data["dropped"].items():
            for reason, count in reasons.items():
                self.dropped.setdefault(name, {})
                self.dropped[name][reason] = self.dropped[name].get(reason, 0) + count
        for key, samples in data["examples"].items():
            mine = self.examples.setdefault(key, [])
            mine.extend(samples[: MAX_EXAMPLES - len(mine)])

    def to_dict(self) -> dict[str, Any]:
        return {"checked": self.checked, "kept": self.kept,
                "dropped": {k: dict(sorted(v.items())) for k, v in self.dropped.items()},
                "dropped_total": {k: sum(v.values()) for k, v in self.dropped.items()},
                "examples": {k: list(v) for k, v in sorted(self.examples.items())}}


def validity_problem(record: QuestionRecord, min_options: int = 2, max_options: int = 10) -> str | None:
    """Why ``record`` is not a well-formed question, or None."""
    if not record.question.strip():
        return "empty stem"
    if len(record.options) < min_options:
        return f"fewer than {min_options} options"
    if len(record.options) > max_options:
        return f"more than {max_options} options"
    if any(not option.strip() for option in record.options):
        return "empty option"
    normalised = [normalise(option) for option in record.options]
    if len(set(normalised)) != len(normalised):
        return "duplicate options"
    if record.gold is None:
        return "no key"
    if record.gold not in record.letters:
        return "key not among the options"
    return None


def shingles(record: QuestionRecord, size: int = 3) -> set[str]:
    """Word ``size``-grams of the normalised stem followed by the key's text."""
    words = normalise(record.question).split()
    if record.gold is not None and record.gold in record.letters:
        words += ["||", *normalise(record.options[record.letters.index(record.gold)]).split()]
    if len(words) < size:
        return {" ".join(words)}
    return {" ".join(words[i:i + size]) for i in range(len(words) - size + 1)}


class NearDuplicateIndex:
    """MinHash/LSH index of kept questions; candidates are confirmed by their estimated Jaccard."""

    def __init__(self, threshold: float = 0.8, num_perm: int = 128) -> None:
        from datasketch import MinHashLSH

        self.threshold = threshold
        self.num_perm = num_perm
        from datasketch import MinHash

        self.lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
        self.hashes: dict[str, Any] = {}
        # drawing the permutations costs ~2 ms per MinHash; draw them once and share them
        template = MinHash(num_perm=num_perm, seed=1)
        self._permutations, self._scheme = template.permutations, template.scheme

    def _minhash(self, record: QuestionRecord) -> Any:
        from datasketch import MinHash

        minhash = MinHash(num_perm=self.num_perm, seed=1, permutations=self._permutations, scheme=self._scheme)
        minhash.update_batch([s.encode("utf-8") for s in sorted(shingles(record))])
        return minhash

    def duplicate_of(self, record: QuestionRecord) -> tuple[str, float] | None:
        """(id of the kept question it nearly repeats, estimated Jaccard) or None."""
        minhash = self._minhash(record)
        best = None
        for other in sorted(self.lsh.query(minhash)):
            similarity = minhash.jaccard(self.hashes[other])
            if similarity >= self.threshold and (best is None or similarity > best[1]):
                best = (other, similarity)
        return best

    def add(self, record: QuestionRecord) -> None:
        if record.id in self.hashes:
            return
        minhash = self._minhash(record)
        self.hashes[record.id] = minhash
        self.lsh.insert(record.id, minhash)


class QualityFilter:
    """All three filters with shared state (the dedup index) and one report."""

    def __init__(self, min_options: int = 2, max_options: int = 10, dedup: bool = True,
                 dedup_threshold: float = 0.8, dedup_num_perm: int = 128, decontaminator: Any = None) -> None:
        self.min_options, self.max_options = min_options, max_options
        self.dedup = NearDuplicateIndex(dedup_threshold, dedup_num_perm) if dedup else None
        self.decontaminator = decontaminator
        self.report = FilterReport()

    @classmethod
    def from_config(cls, cfg: Any, decontaminator: Any = None) -> "QualityFilter":
        return cls(cfg.min_options, cfg.max_options, cfg.dedup, cfg.dedup_threshold, cfg.dedup_num_perm,
                   decontaminator if cfg.decontaminate else None)

    def problem(self, record: QuestionRecord) -> tuple[str, str, str] | None:
        """(filter, reason, detail) of the first filter ``record`` fails, without remembering it."""
        reason = validity_problem(record, self.min_options, self.max_options)
        if reason:
            return "validity", reason, record.question[:80]
        if self.decontaminator is not None:
            found = self.decontaminator.check(record)
            if found is not None:
                return "decontamination", found.reason, f"{record.id} repeats {found.eval_id}"
        if self.dedup is not None:
            duplicate = self.dedup.duplicate_of(record)
            if duplicate is not None:
                return "near_duplicate", "near duplicate of a kept question", \
                    f"{record.id} ~ {duplicate[0]} (Jaccard {duplicate[1]:.2f})"
        return None

    def admit(self, record: QuestionRecord) -> tuple[str, str] | None:
        """Run the filters; a passing record is remembered (dedup) and None returned, else
        (filter, reason) and the drop is counted in ``report``."""
        self.report.checked += 1
        found = self.problem(record)
        if found is not None:
            self.report.drop(*found)
            return found[0], found[1]
        self.remember(record)
        self.report.kept += 1
        return None

    def remember(self, record: QuestionRecord) -> None:
        """Add an already accepted record (e.g. from a finished chunk on resume) to the dedup index."""
        if self.dedup is not None:
            self.dedup.add(record)
