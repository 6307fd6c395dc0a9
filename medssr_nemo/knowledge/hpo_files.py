"""Readers of the HPO annotation release files (``phenotype.hpoa``, ``genes_to_phenotype.txt``)
and of the Orphanet -> OMIM cross-reference map.

Every reader is tolerant by design: a malformed row is dropped and counted in a ``LoadReport``
with its reason and ``file:line``, so one bad line in a new release never stops a run, and the
report says exactly what was lost.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from medssr_nemo.knowledge.interfaces import LoadReport, PhenotypeAnnotation
from medssr_nemo.knowledge.obo import MODE_OF_INHERITANCE, ONSET, Ontology

HPOA_COLUMNS = ("database_id", "disease_name", "qualifier", "hpo_id", "reference", "evidence",
                "onset", "frequency", "sex", "modifier", "aspect", "biocuration")
GENES_COLUMNS = ("ncbi_gene_id", "gene_symbol", "hpo_id", "hpo_name", "frequency", "disease_id")

# HPO frequency terms -> the midpoint of the range each one defines (HPO's own definitions).
FREQUENCY_TERMS = {
    "HP:0040280": 1.0,     # Obligate (100%)
    "HP:0040281": 0.895,   # Very frequent (80-99%)
    "HP:0040282": 0.545,   # Frequent (30-79%)
    "HP:0040283": 0.17,    # Occasional (5-29%)
    "HP:0040284": 0.025,   # Very rare (1-4%)
    "HP:0040285": 0.0,     # Excluded (0%)
}
_DISEASE_ID = re.compile(r"^(OMIM|ORPHA|DECIPHER):\d+$")
_GENE_SYMBOL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9\-._@/]*$")
_RATIO = re.compile(r"^(\d+)/(\d+)$")
_PERCENT = re.compile(r"^(\d+(?:\.\d+)?)%$")
_ASPECTS = {"P", "I", "C", "M", "H"}
_SEX = {"MALE": "male", "FEMALE": "female"}


@dataclass
class RawDisease:
    """What ``phenotype.hpoa`` says about one disease, before cross-references are applied."""

    id: str
    name: str
    phenotypes: dict[str, PhenotypeAnnotation] = field(default_factory=dict)
    excluded: dict[str, PhenotypeAnnotation] = field(default_factory=dict)
    onset: list[str] = field(default_factory=list)          # HPO ids
    inheritance: list[str] = field(default_factory=list)    # HPO ids


def parse_frequency(label: str) -> tuple[float | None, str | None]:
    """(probability, None) for a valid HPO frequency, or (None, reason) for a malformed one.
    An empty label is a valid "unknown" (None, None)."""
    label = label.strip()
    if not label:
        return None, None
    if label.startswith("HP:"):
        if label in FREQUENCY_TERMS:
            return FREQUENCY_TERMS[label], None
        return None, f"unknown frequency term {label}"
    ratio = _RATIO.match(label)
    if ratio:
        num, den = int(ratio.group(1)), int(ratio.group(2))
        if den == 0 or num > den:
            return None, f"impossible ratio {label}"
        return num / den, None
    percent = _PERCENT.match(label)
    if percent:
        value = float(percent.group(1))
        if value > 100:
            return None, f"percentage over 100 ({label})"
        return value / 100, None
    return None, f"unreadable frequency {label!r}"


def read_hpoa(path: str | Path, ontology: Ontology, report: LoadReport) -> dict[str, RawDisease]:
    """Diseases of ``phenotype.hpoa`` by id; rows that cannot be used are dropped with a reason.

    The file has ~270k rows but few distinct values per column, so every per-value check
    (id pattern, term resolution, frequency parsing) is memoised: a first load stays in seconds.
    """
    path = Path(path)
    fname = path.name
    diseases: dict[str, RawDisease] = {}
    inheritance_terms = ontology.subtree(MODE_OF_INHERITANCE)
    onset_terms = ontology.subtree(ONSET)
    resolved: dict[str, str | None] = {}
    frequencies: dict[str, tuple[float | None, str | None]] = {}
    bad_ids: set[str] = set()
    header_seen = False
    rows = 0
    ncols = len(HPOA_COLUMNS)

    def resolve(raw_id: str) -> str | None:
        if raw_id not in resolved:
            resolved[raw_id] = ontology.resolve(raw_id)
        return resolved[raw_id]

    with open(path, encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, 1):
            if line[0] == "#" or not line.strip():
                continue
            cells = line.rstrip("\n").split("\t")
            if not header_seen and cells[0] == "database_id":
                header_seen = True
                continue
            rows += 1
            if len(cells) != ncols:
                report.drop(f"hpoa: expected {ncols} tab-separated columns", f"{fname}:{lineno} has {len(cells)}")
                continue
            disease_id, name, qualifier, hpo_raw, _, _, onset_raw, freq_raw, sex_raw, _, aspect, _ = cells
            disease = diseases.get(disease_id)
            if disease is None:
                if disease_id in bad_ids or not _DISEASE_ID.match(disease_id):
                    bad_ids.add(disease_id)
                    report.drop("hpoa: database_id is not OMIM:/ORPHA:/DECIPHER:<digits>",
                                f"{fname}:{lineno}: {disease_id!r}")
                    continue
                if not name.strip():
                    report.drop("hpoa: empty disease_name", f"{fname}:{lineno}")
                    continue
            hpo_id = resolve(hpo_raw)
            if hpo_id is None:
                report.drop("hpoa: hpo_id unknown or obsolete in hp.obo", f"{fname}:{lineno}: {hpo_raw!r}")
                continue
            if aspect not in _ASPECTS:
                report.drop("hpoa: aspect is not one of P, I, C, M, H", f"{fname}:{lineno}: {aspect!r}")
                continue
            if qualifier and qualifier != "NOT":
                report.drop("hpoa: qualifier is neither empty nor NOT", f"{fname}:{lineno}: {qualifier!r}")
                continue
            if disease is None:
                disease = diseases[disease_id] = RawDisease(disease_id, name.strip())
            if aspect == "I":
                if hpo_id not in inheritance_terms:
                    report.drop("hpoa: aspect I term is not a mode of inheritance", f"{fname}:{lineno}: {hpo_id}")
                elif qualifier != "NOT" and hpo_id not in disease.inheritance:
                    disease.inheritance.append(hpo_id)
                continue
            if aspect == "C":
                if hpo_id in onset_terms and qualifier != "NOT" and hpo_id not in disease.onset:
                    disease.onset.append(hpo_id)
                continue  # other clinical-course terms (progression, mortality) are not used
            if aspect != "P":
                continue  # M (modifiers) and H (past history) carry nothing the questions use
            if freq_raw not in frequencies:
                frequencies[freq_raw] = parse_frequency(freq_raw)
            frequency, problem = frequencies[freq_raw]
            if problem:
                report.drop("hpoa: malformed frequency", f"{fname}:{lineno}: {problem}")
                continue
            onset_id = resolve(onset_raw) if onset_raw else None
            if onset_raw and onset_id not in onset_terms:
                report.drop("hpoa: onset is not an HPO onset term", f"{fname}:{lineno}: {onset_raw!r}")
                continue
            if sex_raw and sex_raw.upper() not in ("MALE", "FEMALE"):
                report.drop("hpoa: sex is not MALE or FEMALE", f"{fname}:{lineno}: {sex_raw!r}")
                continue
            target = disease.excluded if qualifier == "NOT" else disease.phenotypes
            previous = target.get(hpo_id)
            # the same term may be annotated from several sources; keep the most informative row
            if previous is None or (previous.frequency is None and frequency is not None):
                target[hpo_id] = PhenotypeAnnotation(
                    hpo_id, ontology.name(hpo_id), frequency, sys.intern(freq_raw.strip()),
                    ontology.name(onset_id) if onset_id else None, _SEX.get(sex_raw.upper()),
                )
    if not header_seen:
        report.drop("hpoa: header line 'database_id\\tdisease_name\\t...' missing", fname)
    report.counts["hpoa_rows"] = rows
    report.counts["hpoa_diseases"] = len(diseases)
    return diseases


def read_genes(path: str | Path, report: LoadReport) -> dict[str, list[str]]:
    """Disease id -> sorted gene symbols, from ``genes_to_phenotype.txt`` (one row per gene,
    phenotype and disease; only the gene-disease pairs are kept)."""
    path = Path(path)
    fname = path.name
    genes: dict[str, set[str]] = {}
    checked: dict[tuple[str, str], str | None] = {}   # (symbol, disease) -> drop reason or None
    rows = 0
    ncols = len(GENES_COLUMNS)
    with open(path, encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, 1):
            cells = line.rstrip("\n").split("\t")
            if lineno == 1 and cells[0] == "ncbi_gene_id":
                continue
            if not line.strip():
                continue
            rows += 1
            if len(cells) != ncols:
                report.drop(f"genes: expected {ncols} tab-separated columns", f"{fname}:{lineno} has {len(cells)}")
                continue
            pair = (cells[1].strip(), cells[5].strip())
            if pair not in checked:
                symbol, disease_id = pair
                if not _GENE_SYMBOL.match(symbol):
                    checked[pair] = f"genes: empty or malformed gene_symbol"
                elif not _DISEASE_ID.match(disease_id):
                    checked[pair] = "genes: disease_id is not OMIM:/ORPHA:/DECIPHER:<digits>"
                else:
                    checked[pair] = None
                    genes.setdefault(disease_id, set()).add(symbol)
            if checked[pair] is not None:
                report.drop(checked[pair], f"{fname}:{lineno}: {pair[0]!r} / {pair[1]!r}")
    report.counts["gene_rows"] = rows
    return {disease: sorted(symbols) for disease, symbols in genes.items()}


def read_orpha2omim(path: str | Path, report: LoadReport) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """(ORPHA id -> OMIM ids mapped exactly (type ``E``), ORPHA id -> OMIM ids mapped in any way).

    Only exact mappings denote the same disease. Any mapping (broader, narrower, ...) says the two
    overlap, e.g. a disease group and one of its subtypes, and that Orphanet, the rare-disease
    nomenclature, covers the OMIM entry at all."""
    path = Path(path)
    try:
        table = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        report.drop("orpha2omim: not valid JSON", f"{path.name}:{err.lineno}: {err.msg}")
        return {}, {}
    if not isinstance(table, dict):
        report.drop("orpha2omim: expected an object ORPHA id -> [[OMIM id, type], ...]", path.name)
        return {}, {}
    exact: dict[str, list[str]] = {}
    mapped: dict[str, list[str]] = {}
    for orpha, pairs in table.items():
        if not isinstance(pairs, list):
            report.drop("orpha2omim: entry is not a list of [OMIM id, type] pairs", f"{path.name}: {orpha}")
            continue
        for pair in pairs:
            if not (isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], str)):
                report.drop("orpha2omim: mapping is not an [OMIM id, type] pair", f"{path.name}: {orpha}: {pair!r}")
                continue
            mapped.setdefault(orpha, []).append(pair[0])
            if pair[1] == "E":
                exact.setdefault(orpha, []).append(pair[0])
    report.counts["orpha2omim_exact"] = sum(len(v) for v in exact.values())
    return exact, mapped
