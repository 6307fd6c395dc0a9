"""Human-annotated training pools (stage-2 "real" data) as gold-labelled question records.

Pools (files under ``<data>/train``):

- ``medmcqa``: ``medmcqa/dev.json``, JSONL ``{id, question, opa..opd, cop (1-based), ...}``;
  ids ``medmcqa-<id>`` (the evaluation file's scheme), category = ``subject_name``.
- ``pubmedqa``: ``pubmedqa/ori_pqal.json`` (PQA-L), pmid -> ``{QUESTION, CONTEXTS, final_decision}``;
  ids ``pubmedqa-<pmid>``; options ``yes``/``no``/``maybe`` as A/B/C like the evaluation file;
  the abstract's context paragraphs go before the question only when asked (``with_context``).
- ``mmlu``: ``mmlu_medical/<subject>_{dev,val}.csv``, headerless ``question,A,B,C,D,answer``;
  ids ``mmlu-<subject>-<split>-<row, 3 digits>`` (0-based), category = subject.

Bad input, two kinds:

- a row that is not what the layout promises (not JSON, a missing field, ``cop`` outside 1..4, a
  CSV row without 6 columns, an answer outside A-D, a decision outside yes/no/maybe) is a
  ``RecordError`` naming the file and line (pmid for PubMedQA): the file is not the one we know;
- a well-formed row that cannot make a fair training question is dropped and counted as
  ``invalid``: ``empty question``, ``empty option``, ``ambiguous key`` (the key's text also stands
  under another letter, so a right answer could be scored wrong: 13 MedMCQA dev rows, 9 of them
  outside the evaluation subset, none elsewhere).

Every record is first checked against the evaluation suite (``Decontaminator``, plus PubMedQA's
500 test pmids from ``pubmedqa/test_ground_truth.json``), so the removed counts cover every
evaluation item in a pool; contaminated records are removed and reported per pool and reason.
On the shared data: MedMCQA 1200 exact id + 7 exact text + 9 n-gram overlap; PubMedQA 500 exact
id; MMLU 19 exact text + 2 n-gram overlap.
"""

from __future__ import annotations

import csv
import json
import os
import random
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from medssr_nemo.artifacts import file_sha256
from medssr_nemo.data.decontam import Contamination, Decontaminator, normalise_text
from medssr_nemo.data.eval_suite import load_eval_suite
from medssr_nemo.data.root import data_root
from medssr_nemo.jsonl import iter_json_objects, read_json_document
from medssr_nemo.records import LETTERS, QuestionRecord, RecordError

POOLS = ("medmcqa", "pubmedqa", "mmlu")
PUBMEDQA_OPTIONS = ("yes", "no", "maybe")
_MMLU_FILE = re.compile(r"^(?P<subject>.+)_(?P<split>dev|val)\.csv$")


@dataclass
class Dropped:
    """A training item left out, and why (contaminated, or unfit as a question)."""

    id: str
    pool: str
    kind: str                   # "contaminated" or "invalid"
    reason: str                 # exact id | exact text | ngram overlap | empty question | ...
    eval_id: str | None = None  # the evaluation item it repeats (contaminated only)
    coverage: float | None = None  # ngram overlap only (see medssr_nemo.data.decontam)

    def to_dict(self) -> dict[str, object]:
        return {"id": self.id, "pool": self.pool, "kind": self.kind, "reason": self.reason,
                "eval_id": self.eval_id, "coverage": self.coverage}


@dataclass
class PoolResult:
    pool: str
    records: list[QuestionRecord]                       # clean, in file order (after any limit)
    read: int = 0                                       # rows read from the files
    invalid: list[Dropped] = field(default_factory=list)
    contaminated: list[Dropped] = field(default_factory=list)
    not_selected: int = 0                               # clean records left out by the limit
    input_sha256: dict[str, str] = field(default_factory=dict)

    def summary(self) -> dict[str, object]:
        return {
            "read": self.read,
            "invalid": dict(sorted(Counter(d.reason for d in self.invalid).items())),
            "removed_contaminated": dict(sorted(Counter(d.reason for d in self.contaminated).items())),
            "removed_contaminated_total": len(self.contaminated),
            "clean": len(self.records) + self.not_selected,
            "not_selected_by_limit": self.not_selected,
            "written": len(self.records),
        }


# --- raw readers: file -> (every row as a gold-labelled record, rows read) ------------------------

def _gold_record(pool: str, id: str, stem: str, options: list[str], key: str, **fields: object) -> QuestionRecord:
    return QuestionRecord(id=id, question=stem.strip(), options=[o.strip() for o in options], gold=key,
                          label=key, label_source="gold", source=pool, **fields)


def unfit_reason(record: QuestionRecord) -> str | None:
    """Why a well-formed row cannot be a fair training question, or None."""
    if not record.question.strip():
        return "empty question"
    if any(not o.strip() for o in record.options):
        return "empty option"
    key_text = normalise_text(record.options[record.letters.index(record.gold)]) if record.gold else None
    if key_text is not None and sum(normalise_text(o) == key_text for o in record.options) > 1:
        return "ambiguous key"
    return None


def read_medmcqa(path: str | os.PathLike) -> list[QuestionRecord]:
    """Every row of a MedMCQA JSONL split, in file order."""
    path = Path(path)
    records: list[QuestionRecord] = []
    for where, row in iter_json_objects(path):
        missing = [k for k in ("id", "question", "opa", "opb", "opc", "opd", "cop") if row.get(k) is None]
        if missing:
            raise RecordError(f"{where}: missing field(s) {missing}; expected {{id, question, opa..opd, cop}}")
        cop = row["cop"]
        if isinstance(cop, bool) or not isinstance(cop, int) or not 1 <= cop <= 4:
            raise RecordError(f"{where}: cop={cop!r}; expected the 1-based correct option 1..4")
        records.append(_gold_record(
            "medmcqa", f"medmcqa-{row['id']}", str(row["question"]),
            [str(row[k]) for k in ("opa", "opb", "opc", "opd")], LETTERS[cop - 1],
            category=row.get("subject_name"),
            meta={"topic": row.get("topic_name"), "choice_type": row.get("choice_type")},
        ))
    return records


def read_pubmedqa(path: str | os.PathLike, with_context: bool = False) -> list[QuestionRecord]:
    """Every item of PubMedQA's ``ori_pqal.json``, in file order."""
    path = Path(path)
    table = read_json_document(path, dict, "a JSON object pmid -> item")
    records: list[QuestionRecord] = []
    for pmid, item in table.items():
        where = f"{path} pmid {pmid}"
        if not isinstance(item, dict) or "QUESTION" not in item or "final_decision" not in item:
            raise RecordError(f"{where}: expected an object with QUESTION and final_decision")
        decision = str(item["final_decision"]).strip().lower()
        if decision not in PUBMEDQA_OPTIONS:
            raise RecordError(f"{where}: final_decision={item['final_decision']!r}; expected one of {list(PUBMEDQA_OPTIONS)}")
        stem = str(item["QUESTION"])
        if with_context:
            contexts = item.get("CONTEXTS") or []
            if not isinstance(contexts, list):
                raise RecordError(f"{where}: CONTEXTS must be a list of paragraphs, got {type(contexts).__name__}")
            stem = "Context: " + "\n".join(map(str, contexts)) + "\nQuestion: " + stem
        records.append(_gold_record("pubmedqa", f"pubmedqa-{pmid}", stem, list(PUBMEDQA_OPTIONS),
                                    LETTERS[PUBMEDQA_OPTIONS.index(decision)],
                                    meta={"pmid": str(pmid), "with_context": with_context}))
    return records


def read_mmlu_file(path: str | os.PathLike) -> list[QuestionRecord]:
    """Every row of one headerless MMLU CSV ``<subject>_<split>.csv``, in file order."""
    path = Path(path)
    match = _MMLU_FILE.match(path.name)
    if not match:
        raise RecordError(f"{path}: MMLU files must be named <subject>_dev.csv or <subject>_val.csv")
    subject, split = match["subject"], match["split"]
    records: list[QuestionRecord] = []
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        for index, row in enumerate(reader):
            where = f"{path}:{reader.line_num}"
            if len(row) != 6:
                raise RecordError(f"{where}: {len(row)} columns; expected 6 (question,A,B,C,D,answer), no header")
            answer = row[5].strip()
            if answer not in ("A", "B", "C", "D"):
                raise RecordError(f"{where}: answer={row[5]!r}; expected one of A, B, C, D")
            records.append(_gold_record("mmlu", f"mmlu-{subject}-{split}-{index:03d}", row[0], row[1:5], answer,
                                        category=subject, meta={"split": split}))
    return records


def read_mmlu_dir(directory: str | os.PathLike) -> list[QuestionRecord]:
    """Every row of every ``*.csv`` in ``directory`` (files in name order)."""
    files = sorted(Path(directory).glob("*.csv"))
    if not files:
        raise FileNotFoundError(f"no MMLU CSV files (<subject>_dev.csv, <subject>_val.csv) in {directory}")
    return [record for path in files for record in read_mmlu_file(path)]


def pool_inputs(pool: str, root: Path) -> list[Path]:
    """The files a pool reads (their hashes go into the card)."""
    train = root / "train"
    if pool == "medmcqa":
        paths = [train / "medmcqa" / "dev.json"]
    elif pool == "pubmedqa":
        paths = [train / "pubmedqa" / "ori_pqal.json"]
    elif pool == "mmlu":
        paths = sorted((train / "mmlu_medical").glob("*.csv"))
    else:
        raise ValueError(f"unknown real-data pool {pool!r}; known: {', '.join(POOLS)}")
    for path in paths:
        if not path.exists():
            raise FileNotFoundError(f"training pool file not found: {path}")
    return paths


def pubmedqa_test_ids(root: Path) -> list[str]:
    """``pubmedqa-<pmid>`` of PubMedQA's 500 official test questions (never trained on)."""
    path = root / "train" / "pubmedqa" / "test_ground_truth.json"
    if not path.exists():
        raise FileNotFoundError(f"PubMedQA test id file not found: {path}")
    return [f"pubmedqa-{pmid}" for pmid in json.loads(path.read_text(encoding="utf-8"))]


def real_decontaminator(root: str | os.PathLike | None = None, **options: float) -> Decontaminator:
    """The evaluation-suite index plus PubMedQA's test ids."""
    root = Path(root) if root is not None else data_root()
    suite = load_eval_suite(root)
    return Decontaminator(suite.records, extra_ids=[*suite.case_ids, *pubmedqa_test_ids(root)], **options)


def load_pool(
    pool: str,
    decontaminator: Decontaminator,
    root: str | os.PathLike | None = None,
    max_records: int = 0,
    seed: int = 0,
    pubmedqa_context: bool = False,
) -> PoolResult:
    """Read, validate and decontaminate one pool; ``max_records > 0`` keeps a seeded random
    subset of the clean records (in file order)."""
    root = Path(root) if root is not None else data_root()
    inputs = pool_inputs(pool, root)
    if pool == "medmcqa":
        records = read_medmcqa(inputs[0])
    elif pool == "pubmedqa":
        records = read_pubmedqa(inputs[0], with_context=pubmedqa_context)
    else:
        records = read_mmlu_dir(inputs[0].parent)
    # decontaminate first, so the removed counts cover every evaluation item in the pool
    candidates, removed = decontaminator.split(records)
    contaminated = [_contaminated(record, pool, why) for record, why in removed]
    clean, invalid = [], []
    for record in candidates:
        reason = unfit_reason(record)
        if reason is None:
            clean.append(record)
        else:
            invalid.append(Dropped(record.id, pool, "invalid", reason))
    not_selected = 0
    if 0 < max_records < len(clean):
        # a string seed makes random.Random hash it with sha512: the same subset on every machine
        keep = set(random.Random(f"{seed}:{pool}").sample(range(len(clean)), max_records))
        not_selected = len(clean) - max_records
        clean = [r for i, r in enumerate(clean) if i in keep]
    return PoolResult(pool=pool, records=clean, read=len(records), invalid=invalid, contaminated=contaminated,
                      not_selected=not_selected,
                      input_sha256={str(p.relative_to(root)): file_sha256(p) for p in inputs})


def _contaminated(record: QuestionRecord, pool: str, why: Contamination) -> Dropped:
    return Dropped(record.id, pool, "contaminated", why.reason, why.eval_id, why.coverage)


@dataclass
class RealDataReport:
    """What ``load_real_pools`` did, per pool (``PoolResult.summary`` per pool in ``summary``)."""

    pools: dict[str, PoolResult]
    decontam: dict[str, object] = field(default_factory=dict)

    @property
    def dropped(self) -> list[Dropped]:
        return [d for result in self.pools.values() for d in (*result.contaminated, *result.invalid)]

    def summary(self) -> dict[str, object]:
        return {pool: result.summary() for pool, result in self.pools.items()}


def load_real_pools(pools: Iterable[str] = POOLS, root: str | os.PathLike | None = None,
                    decontaminator: Decontaminator | None = None, max_per_pool: int = 0, seed: int = 0,
                    pubmedqa_context: bool = False) -> tuple[list[QuestionRecord], RealDataReport]:
    """(records of every named pool, in pool then file order; the report), sharing one
    decontamination index (default: ``real_decontaminator(root)`` with its default knobs)."""
    pools = list(pools)
    unknown = [p for p in pools if p not in POOLS]
    if unknown or not pools:
        what = f"unknown real-data pool(s) {unknown}" if unknown else "no real-data pool named"
        raise ValueError(f"{what}; known: {', '.join(POOLS)}")
    index = decontaminator or real_decontaminator(root)
    results = {pool: load_pool(pool, index, root=root, max_records=max_per_pool, seed=seed,
                               pubmedqa_context=pubmedqa_context) for pool in pools}
    knobs = {k: getattr(index, k) for k in ("ngram_size", "ngram_min_coverage", "min_specific_stem_words",
                                            "boilerplate_min_items")}
    records = [r for result in results.values() for r in result.records]
    return records, RealDataReport(results, decontam={**knobs, "eval_items": index.num_items})
