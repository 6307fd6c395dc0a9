"""An automated audit of a synthetic question set against the merged knowledge base.

Works on any question JSONL (``kg``- or ``llm``-made, or hand-written): each record is resolved to
a keyed disease (``meta.disease_id``, a disease id among ``knowledge_ids``, or, for a diagnosis,
the key option's text matched against every name and synonym), its stem findings are the HPO ids
among ``knowledge_ids`` or, failing that, HPO labels/synonyms/clinical phrases found in the stem
text (longest match). Then, per record:

- ``contradicted``: the merged knowledge base says the key is wrong. Diagnosis: a stem finding is
  ``NOT`` for the key disease (the term or an ancestor), or contested between its twins. Gene /
  inheritance: the key is not among the disease's genes / main modes. Not expected: the key
  finding, or a descendant, is present in the merged profile, or was contested between twins.
- ``leakage``: ``leakage.LeakageChecker`` on the stem and options.
- ``ambiguous``: the knowledge base supports another option (``distinct``): a diagnosis
  distractor covers the findings within ``margin`` nats of the key; a gene / mode distractor is
  also the disease's; a vignette is covered as well by a disease without the key; a not-expected
  distractor is not present in the profile.
- ``incoherent``: a patient stem with no age, an age before the disease's onset band, or a
  finding the patient cannot show (``patient.PatientRules``).

A not-expected option whose text maps to no ontology term cannot be checked: it is listed in the
verdict's ``unresolved`` and counted as ``unresolved_options`` (and the question in
``unresolved_questions``), never as checked and passed.

Records whose disease cannot be resolved (seed copies, common-disease questions) are counted as
not checkable; the share of each problem is over the checkable records of that question type.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from medssr_nemo.knowledge.merge import merged_knowledge
from medssr_nemo.knowledge.names import normalise
from medssr_nemo.records import QuestionRecord
from medssr_nemo.synthesis.kg_questions import INHERITANCE_MODES, KGQuestionBuilder, display_name, main_inheritance
from medssr_nemo.synthesis.patient import age_fits_onset, read_patient
from medssr_nemo.synthesis.phrasing import clinical_phrase
from medssr_nemo.synthesis.vignette import onset_of

CHECKS = ("contradicted", "leakage", "ambiguous", "incoherent")
MAX_EXAMPLES = 10
_PATIENT = re.compile(r"\b(boy|girl|man|woman|newborn|neonate|infant|child|patient|male|female)\b", re.I)
_HPO = re.compile(r"^HP:\d{7}$")
_DISEASE = re.compile(r"^(OMIM|ORPHA|DECIPHER):\d+$")
_MODE_BY_TEXT = {normalise(text): name for name, (text, _, _) in INHERITANCE_MODES.items()}


@dataclass
class Verdict:
    id: str
    question_type: str
    checkable: bool = False
    disease: str | None = None
    problems: dict[str, str] = field(default_factory=dict)   # check -> why
    unresolved: list[str] = field(default_factory=list)      # option texts that map to no ontology term

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "question_type": self.question_type, "checkable": self.checkable,
                "disease": self.disease, "problems": dict(self.problems), "unresolved": list(self.unresolved)}


class Auditor:
    """Audits records against the profiles of a ``KGQuestionBuilder`` (merged, rare diseases)."""

    def __init__(self, builder: KGQuestionBuilder) -> None:
        self.b = builder
        self.ontology = builder.ontology
        self._by_id = {}
        for row, profile in enumerate(builder.profiles):
            for entry in profile.source_ids:
                self._by_id.setdefault(entry, row)
        self._by_name: dict[str, int] = {}
        for row, profile in enumerate(builder.profiles):
            for name in [display_name(profile), profile.name, *profile.synonyms]:
                self._by_name.setdefault(normalise(name), row)
        # labels and synonyms first: a clinical phrase never shadows a term's own name
        self._phrases: dict[str, str] = {}
        live = [t for t in self.ontology.terms.values() if not t.obsolete]
        for texts in ((lambda t: (t.name, *t.synonyms)), (lambda t: (clinical_phrase(t.name),))):
            for term in live:
                for text in texts(term):
                    key = normalise(text)
                    if len(key) >= 4:
                        self._phrases.setdefault(key, term.id)
        self._max_words = max(len(k.split()) for k in self._phrases)

    # -- resolving a record --------------------------------------------------------------------
    def disease_row(self, record: QuestionRecord) -> int | None:
        disease_id = (record.meta or {}).get("disease_id")
        if disease_id in self._by_id:
            return self._by_id[disease_id]
        for kid in record.knowledge_ids:
            if _DISEASE.match(kid) and kid in self._by_id:
                return self._by_id[kid]
        if record.question_type == "diagnosis" and record.gold in record.letters:
            return self._by_name.get(normalise(record.options[record.letters.index(record.gold)]))
        return None

    def term_of(self, text: str) -> str | None:
        return self._phrases.get(normalise(text))

    def find_terms(self, text: str) -> list[str]:
        """HPO terms named in free text, longest match first, no overlaps."""
        words, found, i = normalise(text).split(), [], 0
        while i < len(words):
            for length in range(min(self._max_words, len(words) - i), 0, -1):
                term = self._phrases.get(" ".join(words[i:i + length]))
                if term is not None:
                    found.append(term)
                    i += length
                    break
            else:
                i += 1
        return list(dict.fromkeys(found))

    def stem_findings(self, record: QuestionRecord) -> list[str]:
        option_terms = set((record.meta or {}).get("option_findings", []))
        ids = [k for k in record.knowledge_ids if _HPO.match(k) and k not in option_terms]
        if ids:
            return ids
        if record.question_type == "not_expected":
            return []
        stem = record.question.rsplit(".", 1)[0] if "?" in record.question else record.question
        return self.find_terms(stem)

    # -- the checks ----------------------------------------------------------------------------
    def audit(self, record: QuestionRecord) -> Verdict:
        qtype = str(record.question_type or "unknown")
        verdict = Verdict(record.id, qtype)
        row = self.disease_row(record) if record.rare or record.question_type in \
            ("diagnosis", "gene", "inheritance", "not_expected") else None
        if row is None or record.gold not in record.letters:
            return verdict
        verdict.checkable = True
        profile = self.b.profiles[row]
        verdict.disease = profile.id
        key_index = record.letters.index(record.gold)
        key = record.options[key_index]
        distractors = [o for i, o in enumerate(record.options) if i != key_index]
        findings = self.stem_findings(record)
        patient = read_patient(record.question)
        is_case = bool(_PATIENT.search(record.question.split(".", 1)[0])) and qtype != "not_expected"
        names_disease = (record.meta or {}).get("stem_names_disease")
        if names_disease is None:
            names_disease = qtype != "diagnosis" and not is_case
        check = {"diagnosis": self._diagnosis, "gene": self._gene, "inheritance": self._inheritance,
                 "not_expected": self._not_expected}.get(qtype)
        if check is not None:
            check(verdict, row, key, distractors, findings if is_case or qtype == "diagnosis" else [])
        leak = (self.b.leakage.stem_leak(record.question, qtype, key, profile, stem_names_disease=bool(names_disease))
                or self.b.leakage.option_leak(record.options, key_index, qtype, profile))
        if leak:
            verdict.problems["leakage"] = leak
        if is_case:
            why = self._incoherent(patient, profile, findings)
            if why:
                verdict.problems["incoherent"] = why
        return verdict

    def _diagnosis(self, v: Verdict, row: int, key: str, distractors: list[str], findings: list[str]) -> None:
        profile, contested = self.b.profiles[row], self.b.contested[row]
        denied = {e.hpo_id for e in profile.excluded}
        for f in findings:
            hit = denied & self.ontology.ancestors(f)
            if hit or f in contested:
                v.problems["contradicted"] = (f"stem finding {f} is {'NOT' if hit else 'contested'} "
                                              f"for {profile.name}")
                return
        if not findings:
            return
        key_score = self.b.coverage.score(row, findings)
        for option in distractors:
            other = self._by_name.get(normalise(option))
            if other is None or other == row:
                continue
            score = self.b.coverage.score(other, findings)
            if score > key_score - self.b.margin:
                v.problems["ambiguous"] = (f"{option!r} covers the findings {score:.1f} nats vs the key's "
                                           f"{key_score:.1f} (margin {self.b.margin})")
                return

    def _covering_disagrees(self, row: int, findings: list[str], shares) -> str | None:
        if not findings:
            return None
        for other in self.b.coverage.covering(findings, row, self.b.margin):
            if self.b._distinct_from(other, [row]) and not shares(self.b.profiles[other]):
                return f"{self.b.profiles[other].name} covers the case as well without the key"
        return None

    def _gene(self, v: Verdict, row: int, key: str, distractors: list[str], findings: list[str]) -> None:
        genes = set(self.b.profiles[row].genes)
        if key not in genes:
            v.problems["contradicted"] = f"{key} is not a gene of {self.b.profiles[row].name}"
            return
        also = sorted(genes & set(distractors))
        why = (f"distractor {also[0]} is also a gene of the disease" if also else
               self._covering_disagrees(row, findings, lambda p: key in p.genes))
        if why:
            v.problems["ambiguous"] = why

    def _inheritance(self, v: Verdict, row: int, key: str, distractors: list[str], findings: list[str]) -> None:
        modes = set(main_inheritance(self.b.profiles[row]))
        key_mode = _MODE_BY_TEXT.get(normalise(key))
        if key_mode not in modes:
            v.problems["contradicted"] = f"{key!r} is not a mode of inheritance of {self.b.profiles[row].name}"
            return
        also = [d for d in distractors if _MODE_BY_TEXT.get(normalise(d)) in modes]
        why = (f"distractor {also[0]!r} is also a mode of the disease" if also else
               self._covering_disagrees(row, findings, lambda p: key_mode in main_inheritance(p)))
        if why:
            v.problems["ambiguous"] = why

    def _present(self, row: int, term: str) -> bool:
        """The merged profile has ``term`` or a descendant (so the patient has ``term``)."""
        return any(term in self.ontology.ancestors(p.hpo_id) for p in self.b.profiles[row].phenotypes)

    def _not_expected(self, v: Verdict, row: int, key: str, distractors: list[str], findings: list[str]) -> None:
        key_term = self.term_of(key)
        v.unresolved += [o for o in (key, *distractors) if self.term_of(o) is None]
        if key_term is None:
            return
        if self._present(row, key_term) or key_term in self.b.contested[row]:
            v.problems["contradicted"] = f"{key!r} is {'present' if self._present(row, key_term) else 'contested'} " \
                                         f"in the merged profile of {self.b.profiles[row].name}"
            return
        for option in distractors:
            term = self.term_of(option)
            if term is not None and not self._present(row, term):
                v.problems["ambiguous"] = f"distractor {option!r} is not in the profile either"
                return

    def _incoherent(self, patient, profile, findings: list[str]) -> str | None:
        if patient.age_years is None:
            return "no age stated"
        onsets = [o for o in [onset_of(profile)] if o]
        if not age_fits_onset(patient.age_years, onsets):
            return f"age {patient.age_years:g} y is before the onset ({onsets[0]})"
        for f in findings:
            why = self.b.rules.fits(f, patient)
            if why:
                return f"{why}: {self.ontology.name(f)}"
        return None


def audit_records(records: Iterable[QuestionRecord], auditor: Auditor) -> dict[str, Any]:
    """The audit report: per question type, checkable count and share of each problem; the mix;
    a few examples of each problem."""
    records = list(records)
    verdicts = [auditor.audit(r) for r in records]
    by_type: dict[str, dict[str, Any]] = {}
    examples: dict[str, list[dict[str, str]]] = {}
    for v in verdicts:
        row = by_type.setdefault(v.question_type, {"questions": 0, "checkable": 0, **{c: 0 for c in CHECKS},
                                                   "unresolved_questions": 0, "unresolved_options": 0})
        row["questions"] += 1
        row["checkable"] += v.checkable
        row["unresolved_questions"] += bool(v.unresolved)
        row["unresolved_options"] += len(v.unresolved)
        if v.unresolved and len(examples.setdefault("unresolved", [])) < MAX_EXAMPLES:
            examples["unresolved"].append({"id": v.id, "why": f"no ontology term for {v.unresolved}"})
        for check, why in v.problems.items():
            row[check] += 1
            samples = examples.setdefault(check, [])
            if len(samples) < MAX_EXAMPLES:
                samples.append({"id": v.id, "why": why})
    for row in by_type.values():
        for check in CHECKS:
            row[f"{check}_share"] = round(row[check] / row["checkable"], 4) if row["checkable"] else None
    checkable = sum(v.checkable for v in verdicts)
    overall = {c: sum(c in v.problems for v in verdicts) for c in CHECKS}
    return {
        "questions": len(records), "checkable": checkable,
        "overall": {**overall, **{f"{c}_share": round(n / checkable, 4) if checkable else None
                                  for c, n in overall.items()},
                    "unresolved_questions": sum(bool(v.unresolved) for v in verdicts),
                    "unresolved_options": sum(len(v.unresolved) for v in verdicts)},
        "by_question_type": dict(sorted(by_type.items())),
        "mix": {"rare_share": round(sum(r.rare for r in records) / len(records), 4) if records else None,
                "question_type": dict(sorted(Counter(str(r.question_type) for r in records).items())),
                "difficulty": dict(sorted(Counter(str(r.difficulty) for r in records).items())),
                "origin": dict(sorted(Counter(str((r.meta or {}).get("origin", r.source)) for r in records).items()))},
        "margin_nats": auditor.b.margin,
        "examples": examples,
    }


def verdicts_of(records: Sequence[QuestionRecord], auditor: Auditor) -> list[Verdict]:
    return [auditor.audit(r) for r in records]


def auditor_for(knowledge: Any, margin: float, num_options: int = 5,
                builder: KGQuestionBuilder | None = None) -> Auditor | None:
    """An auditor over the merged rare profiles of ``knowledge`` (reusing a kg synthesizer's
    ``builder`` when given); None for a knowledge source without profiles or ontology."""
    if builder is None:
        if getattr(knowledge, "ontology", None) is None or not knowledge.profiles():
            return None

        merged = merged_knowledge(knowledge)
        rows = [i for i, p in enumerate(merged.profiles) if p.rare]
        builder = KGQuestionBuilder([merged.profiles[i] for i in rows], knowledge.ontology, num_options, margin,
                                    [merged.contested[i] for i in rows])
    return Auditor(builder)
