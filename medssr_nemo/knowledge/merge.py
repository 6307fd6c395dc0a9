"""One disease, one profile: OMIM and Orphanet entries that map exactly are merged, and findings
the merged profile both asserts and denies are dropped.

Why: HPO annotates each catalogue entry separately. The OMIM and Orphanet entries of one disease
annotate different findings, and an Orphanet ``NOT`` can deny what the exact OMIM twin asserts
(Glanzmann thrombasthenia: the aggregation defects that define it are ``NOT`` in ORPHA:849 and
present in OMIM:273800). A question built from one entry alone can then key a finding as "not a
feature" that the same disease has, or take a missing annotation for an absent finding.

Merging: entries linked by exact cross-references (``DiseaseProfile.source_ids``) form one group
(union-find, so chains of exact maps close). The group's profile takes the union of findings
(per term the most informative frequency: a known one over unknown, then the highest), of
``NOT`` findings, onsets, modes of inheritance, genes, names (every member's name becomes a
synonym) and ids. Its id and name are those of the Orphanet member when there is one (Orphanet
names the clinical entity; OMIM titles are often inverted catalogue headings), else the lowest id.

Conflicts: a ``NOT t`` conflicts with a present annotation of ``t`` or of any descendant of ``t``
(a descendant implies ``t``). Both sides are dropped from the merged profile, since the knowledge
base cannot say which is right, and each drop is listed in the ``MergeReport``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Sequence

from medssr_nemo.knowledge.interfaces import DiseaseProfile, PhenotypeAnnotation
from medssr_nemo.knowledge.obo import Ontology

MAX_REPORTED = 200     # conflicts listed verbatim in the report (all are counted)


@dataclass
class Conflict:
    """A ``NOT`` finding and the present findings it contradicts, all dropped from one profile."""

    disease_id: str
    disease: str
    excluded: str                   # the NOT term (id)
    excluded_name: str
    excluded_from: list[str]        # member entries that state the NOT
    present: list[str]              # contradicted present terms (the NOT term or descendants)
    present_from: list[str]         # member entries that state them

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class MergeReport:
    entries: int = 0
    profiles: int = 0
    merged_groups: int = 0          # groups of two or more entries
    conflicts: list[Conflict] = field(default_factory=list)
    dropped_present: int = 0        # present annotations dropped for a conflict
    dropped_excluded: int = 0       # NOT annotations dropped for a conflict

    def to_dict(self) -> dict[str, Any]:
        return {"entries": self.entries, "profiles": self.profiles, "merged_groups": self.merged_groups,
                "conflicts": len(self.conflicts), "dropped_present": self.dropped_present,
                "dropped_excluded": self.dropped_excluded,
                "conflict_list": [c.to_dict() for c in self.conflicts[:MAX_REPORTED]]}


@dataclass
class MergedKnowledge:
    """Merged profiles plus the lookups the synthesizers and the audit need."""

    profiles: list[DiseaseProfile]
    report: MergeReport
    by_entry: dict[str, int]                 # any member entry id -> row in ``profiles``
    members: list[list[str]]                 # row -> member entry ids
    # (row, term) pairs dropped for a conflict: neither present nor absent for this disease
    contested: list[frozenset[str]] = field(default_factory=list)

    def profile_of(self, entry_id: str) -> DiseaseProfile | None:
        row = self.by_entry.get(entry_id)
        return self.profiles[row] if row is not None else None


class _UnionFind:
    def __init__(self, items: Iterable[str]) -> None:
        self.parent = {i: i for i in items}

    def find(self, x: str) -> str:
        root = x
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[x] != root:
            self.parent[x], x = root, self.parent[x]
        return root

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def _id_key(disease_id: str) -> tuple[int, str, int]:
    prefix, _, number = disease_id.partition(":")
    order = {"ORPHA": 0, "OMIM": 1}.get(prefix, 2)
    return order, prefix, int(number) if number.isdigit() else 0


def _better(a: PhenotypeAnnotation, b: PhenotypeAnnotation) -> PhenotypeAnnotation:
    """The more informative of two annotations of one term."""
    if a.frequency is None:
        return b if b.frequency is not None else a
    if b.frequency is None:
        return a
    return b if b.frequency > a.frequency else a


def merge_group(members: Sequence[DiseaseProfile], ontology: Ontology,
                report: MergeReport) -> tuple[DiseaseProfile, frozenset[str]]:
    """One profile for an exact-twin group, conflicts removed (see the module docstring); also
    returns the contested terms."""
    members = sorted(members, key=lambda p: _id_key(p.id))
    head = members[0]
    present: dict[str, PhenotypeAnnotation] = {}
    present_from: dict[str, list[str]] = {}
    excluded: dict[str, PhenotypeAnnotation] = {}
    excluded_from: dict[str, list[str]] = {}
    for member in members:
        for a in member.phenotypes:
            present[a.hpo_id] = _better(present[a.hpo_id], a) if a.hpo_id in present else a
            present_from.setdefault(a.hpo_id, []).append(member.id)
        for a in member.excluded:
            excluded.setdefault(a.hpo_id, a)
            excluded_from.setdefault(a.hpo_id, []).append(member.id)
    contested: set[str] = set()
    for term in sorted(excluded):
        hits = sorted(t for t in present if term in ontology.ancestors(t))
        if not hits:
            continue
        contested.add(term)
        contested.update(hits)
        report.conflicts.append(Conflict(
            disease_id=head.id, disease=head.name, excluded=term, excluded_name=excluded[term].name,
            excluded_from=excluded_from[term], present=hits,
            present_from=sorted({m for t in hits for m in present_from[t]})))
    kept_present = [a for t, a in present.items() if t not in contested]
    kept_excluded = [a for t, a in excluded.items() if t not in contested]
    report.dropped_present += len(present) - len(kept_present)
    report.dropped_excluded += len(excluded) - len(kept_excluded)
    if len(members) == 1 and not contested:
        return head, frozenset()
    names = [head.name]
    synonyms: list[str] = []
    for member in members:
        if member.name.lower() not in {n.lower() for n in names}:
            synonyms.append(member.name)
        synonyms += member.synonyms
    seen = {head.name.lower()}
    synonyms = [s for s in synonyms if not (s.lower() in seen or seen.add(s.lower()))]

    def union(attr: str) -> list[str]:
        return list(dict.fromkeys(x for m in members for x in getattr(m, attr)))

    source_ids = union("source_ids")
    category_votes = Counter(m.category for m in members for _ in m.phenotypes if m.category)
    merged = replace(
        head, source_ids=[head.id, *sorted(set(source_ids) - {head.id}, key=_id_key)],
        related_ids=sorted(set(union("related_ids")) - set(source_ids), key=_id_key),
        synonyms=synonyms, phenotypes=kept_present, excluded=kept_excluded,
        onset=union("onset"), inheritance=union("inheritance"),
        inheritance_source=next((m.inheritance_source for m in members if m.inheritance_source), None),
        sex=next((m.sex for m in members if m.sex), None),
        genes=sorted(set(union("genes"))),
        category=category_votes.most_common(1)[0][0] if category_votes else head.category,
        rare=any(m.rare for m in members),
    )
    return merged, frozenset(contested)


def merge_profiles(profiles: Sequence[DiseaseProfile], ontology: Ontology) -> MergedKnowledge:
    """Merge exact twins among ``profiles`` (see the module docstring)."""
    by_id = {p.id: p for p in profiles}
    groups = _UnionFind(by_id)
    for p in profiles:
        for other in p.source_ids:
            if other in by_id and other != p.id:
                groups.union(p.id, other)
    members: dict[str, list[DiseaseProfile]] = {}
    for p in profiles:
        members.setdefault(groups.find(p.id), []).append(p)
    report = MergeReport(entries=len(profiles))
    merged: list[DiseaseProfile] = []
    member_ids: list[list[str]] = []
    contested: list[frozenset[str]] = []
    by_entry: dict[str, int] = {}
    for root in sorted(members, key=_id_key):
        group = members[root]
        profile, disputed = merge_group(group, ontology, report)
        row = len(merged)
        merged.append(profile)
        contested.append(disputed)
        member_ids.append(sorted((m.id for m in group), key=_id_key))
        report.merged_groups += len(group) > 1
        for entry in {*(m.id for m in group), *profile.source_ids}:
            by_entry.setdefault(entry, row)
    report.profiles = len(merged)
    return MergedKnowledge(merged, report, by_entry, member_ids, contested)


def merged_knowledge(knowledge: Any) -> MergedKnowledge:
    """The merged view of a knowledge source with profiles and an ontology, computed once per
    source object (kept on it, so every synthesizer and the audit share one)."""
    cached = getattr(knowledge, "_merged_view", None)
    if cached is None:
        ontology = getattr(knowledge, "ontology", None)
        if ontology is None:
            raise ValueError(f"merging disease profiles needs an ontology; knowledge source "
                             f"{getattr(knowledge, 'name', knowledge)!r} has none")
        cached = merge_profiles(list(knowledge.profiles()), ontology)
        knowledge._merged_view = cached
    return cached
