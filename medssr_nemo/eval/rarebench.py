"""RareBench cases as multiple-choice diagnosis questions (the offline rare-disease benchmark).

A RareBench case is a list of HPO phenotype ids and the confirmed disease ids (OMIM, ORPHA,
CCRD). Each case becomes one question, deterministically:

- **Stem**: the case's phenotype names (``phenotype_mapping.json``, file order; ids missing from
  the mapping are skipped and listed in ``meta``), then "Which of the following is the most
  likely diagnosis?".
- **Correct option**: the name of the case's first disease id that the mapping names, preferring
  OMIM, then ORPHA, then CCRD (CCRD names are bilingual; only the English part is shown). A
  mapping entry lists synonyms separated by ``/`` or ``;``: the first is shown, all of them keep
  distractors from naming the same disease. An id the
  mapping lacks is named through Orphanet's exact OMIM <-> ORPHA cross-references
  (``<data>/knowledge/orpha2omim.json``; one HMS case, OMIM:607665, needs it).
- **Distractors** (``num_options - 1``, 3 by default): diseases diagnosed in *other* cases of the
  same subset, never one sharing an id or a synonym with any of this case's diagnoses. Candidates
  are ranked by the Jaccard similarity of their pooled phenotypes (all cases with that diagnosis)
  to this case's phenotypes, so distractors are clinically close; the ``2 * (num_options - 1)``
  closest form a pool (ties broken by name) from which the distractors are drawn with a RNG
  seeded by ``sha256("<subset>:<case index>")``. Subsets too small to fill the pool fall back to
  other diseases of ``disease_mapping.json`` in id order.
- **Option order**: shuffled by the same RNG, so the answer letter is spread evenly.

Every question has ``rare=True`` and keeps the case's ids in ``knowledge_ids`` (for
decontamination) and the subset in ``category``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import random
import re
from dataclasses import dataclass
from pathlib import Path

from medssr_nemo.data.eval_files import read_rarebench_file
from medssr_nemo.jsonl import read_json_document
from medssr_nemo.data.root import data_root
from medssr_nemo.records import QuestionRecord, RecordError

DISEASE_MAPPING = "disease_mapping.json"
PHENOTYPE_MAPPING = "phenotype_mapping.json"
ORPHA2OMIM = "knowledge/orpha2omim.json"   # under the data root
_ID_PRIORITY = {"OMIM": 0, "ORPHA": 1, "CCRD": 2}
_CJK = re.compile(r"[\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uff00-\uffef]")
STEM_INTRO = "A patient presents with the following phenotypic features (HPO terms): "
STEM_QUESTION = "Which of the following rare diseases is the most likely diagnosis?"


@dataclass(frozen=True)
class Diagnosis:
    """A disease as an answer option: its shown name, every synonym (normalised) and its ids."""

    name: str
    synonyms: frozenset[str]
    ids: frozenset[str]


@functools.lru_cache(maxsize=8)
def load_mapping(path: Path) -> dict[str, str]:
    """An id -> name mapping file of RareBench (UTF-8 with a byte-order mark)."""
    if not path.exists():
        raise FileNotFoundError(f"RareBench mapping file not found: {path} (it sits beside the subset files)")
    return read_json_document(path, dict, "a JSON object id -> name", encoding="utf-8-sig")


def english_synonyms(raw_name: str) -> list[str]:
    """The English synonyms of a mapping entry (separated by ``/`` or ``;``), in order, without
    duplicates; Chinese names of CCRD entries are dropped."""
    seen, names = set(), []
    for part in re.split(r"[/;]", raw_name):
        part = part.strip()
        if part and not _CJK.search(part) and _norm(part) not in seen:
            seen.add(_norm(part))
            names.append(part)
    return names


def _normalised(names: list[str]) -> set[str]:
    return {_norm(name) for name in names if len(_norm(name)) > 3}


def _norm(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9]+", " ", text.lower()).split())


@functools.lru_cache(maxsize=2)
def exact_cross_references(path: Path | None) -> dict[str, frozenset[str]]:
    """OMIM <-> ORPHA ids that Orphanet maps exactly (type ``E``), both ways; empty without
    the file. It names the one RareBench case whose OMIM id the mapping file lacks."""
    if path is None or not path.exists():
        return {}
    links: dict[str, set[str]] = {}
    for orpha, targets in json.loads(path.read_text(encoding="utf-8")).items():
        for target, kind in targets:
            if kind == "E":
                links.setdefault(orpha, set()).add(target)
                links.setdefault(target, set()).add(orpha)
    return {k: frozenset(v) for k, v in links.items()}


def _orpha2omim_path() -> Path | None:
    try:
        return data_root() / ORPHA2OMIM
    except FileNotFoundError:
        return None


def case_diagnosis(disease_ids: list[str], mapping: dict[str, str],
                   cross_refs: dict[str, frozenset[str]] | None = None) -> Diagnosis | None:
    """The case's answer: the best-ranked named id gives the shown name; every named id
    contributes synonyms, so no distractor can be another name of the same diagnosis. Ids
    exactly cross-referenced (OMIM <-> ORPHA) rank after the case's own ids."""
    cross_refs = cross_refs or {}
    linked = sorted({x for d in disease_ids for x in cross_refs.get(d, ())} - set(disease_ids))
    disease_ids = list(disease_ids) + linked
    ranked = sorted(disease_ids, key=lambda d: (d in linked, _ID_PRIORITY.get(d.split(":")[0], len(_ID_PRIORITY))))
    shown, synonyms = None, set()
    for disease_id in ranked:
        names = english_synonyms(mapping.get(disease_id, ""))
        if names:
            shown = shown or names[0]
            synonyms |= _normalised(names) | {_norm(names[0])}
    if shown is None:
        return None
    return Diagnosis(shown, frozenset(synonyms), frozenset(disease_ids))


def _seed(subset: str, index: int) -> int:
    return int.from_bytes(hashlib.sha256(f"{subset}:{index}".encode()).digest()[:8], "big")


def _jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a or b else 0.0


def rarebench_questions(path: str | Path, num_options: int = 4) -> list[QuestionRecord]:
    """One multiple-choice question per case of the RareBench subset file ``path``."""

    path = Path(path)
    if num_options < 2:
        raise ValueError(f"num_options must be >= 2, got {num_options}")
    cases = read_rarebench_file(path)
    diseases = load_mapping(path.parent / DISEASE_MAPPING)
    phenotypes = load_mapping(path.parent / PHENOTYPE_MAPPING)

    cross_refs = exact_cross_references(_orpha2omim_path())
    answers: list[Diagnosis] = []
    for index, case in enumerate(cases):
        answer = case_diagnosis(case.diseases, diseases, cross_refs)
        if answer is None:
            raise RecordError(f"{path} case {index}: none of its disease ids {case.diseases} has an "
                              f"English name in {path.parent / DISEASE_MAPPING}")
        answers.append(answer)

    # Candidate distractors: the subset's distinct diagnoses with their pooled phenotypes.
    profiles: dict[str, set[str]] = {}
    by_name: dict[str, Diagnosis] = {}
    for case, answer in zip(cases, answers):
        profiles.setdefault(answer.name, set()).update(case.phenotypes)
        if answer.name in by_name:
            old = by_name[answer.name]
            answer = Diagnosis(answer.name, old.synonyms | answer.synonyms, old.ids | answer.ids)
        by_name[answer.name] = answer

    need = num_options - 1
    records = []
    for index, (case, answer) in enumerate(zip(cases, answers)):
        case_phenotypes = set(case.phenotypes)
        candidates = sorted(by_name.values(), key=lambda d: (-_jaccard(case_phenotypes, profiles[d.name]), d.name))
        pool: list[Diagnosis] = []
        for candidate in candidates:  # pairwise distinct, so no two options name one disease
            if _distinct(candidate, answer) and all(_distinct(candidate, p) for p in pool):
                pool.append(candidate)
                if len(pool) == 2 * need:
                    break
        if len(pool) < need:
            pool += _fallback_diagnoses(diseases, answer, pool, need - len(pool))
        rng = random.Random(_seed(case.subset, index))
        options = [answer.name] + [d.name for d in rng.sample(pool, need)]
        rng.shuffle(options)
        named = [phenotypes[h] for h in case.phenotypes if h in phenotypes]
        unknown = [h for h in case.phenotypes if h not in phenotypes]
        if not named:
            raise RecordError(f"{path} case {index}: none of its phenotypes {case.phenotypes} is named in "
                              f"{path.parent / PHENOTYPE_MAPPING}")
        records.append(QuestionRecord(
            id=case.id, question=f"{STEM_INTRO}{'; '.join(named)}.\n{STEM_QUESTION}", options=options,
            gold="ABCDEFGHIJKLMNOPQRSTUVWXYZ"[options.index(answer.name)],
            source="rarebench", knowledge_ids=list(case.diseases), rare=True, category=case.subset,
            question_type="diagnosis",
            meta={"phenotypes": list(case.phenotypes), "unknown_phenotypes": unknown,
                  "department": case.department},
        ))
    return records


def _distinct(candidate: Diagnosis, answer: Diagnosis) -> bool:
    return not (candidate.ids & answer.ids) and not (candidate.synonyms & answer.synonyms)


def _fallback_diagnoses(mapping: dict[str, str], answer: Diagnosis, taken: list[Diagnosis], count: int) -> list[Diagnosis]:
    """The first ``count`` mapping diseases (id order) distinct from the answer and ``taken``."""
    out: list[Diagnosis] = []
    for disease_id in sorted(mapping):
        candidate = case_diagnosis([disease_id], mapping)
        if candidate and all(_distinct(candidate, d) for d in (answer, *taken, *out)):
            out.append(candidate)
            if len(out) == count:
                break
    return out
