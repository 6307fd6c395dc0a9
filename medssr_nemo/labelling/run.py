"""The pseudo-labelling loop: sample n answers per question, vote, write labelled records.

Each question is answered exactly as the evaluation answers it (``medssr_nemo.eval.answering``:
the shared prompt template, the shared answer reader in ``answer_extraction`` mode, and the
paper's constrained re-decode, ``medssr_nemo.eval.redecode``, for a sample that states no answer).
Labelling's own: the sampling settings, and a re-decode of one token restricted to the
question's own letters for every model family (the paper's labelling code is not public; a vote
needs a letter, and the script's second token for non-Qwen models can only lose one).

Files under ``out_dir`` (``<name>`` = ``label.output_name``):

- ``<name>.samples.jsonl``: every question's sampled answers, appended as questions finish; the
  resume point (``SamplesLog``). Sample k of question q uses the seed ``sample_seed(seed, q, k)``,
  so a resumed run draws exactly the samples an uninterrupted run would have drawn.
- ``<name>.jsonl``: the labelled records (label_source ``pseudo``, vote counts, agreement), in
  input order; ``<name>.votes.jsonl``: the vote of every question, kept or not;
  ``<name>.card.json``: settings, input hash, report. Written atomically, the card last.

Votes are taken from the log when every question is in it, so changing only the vote rule
(tau, ties) re-votes without sampling again. An answer outside the question's letters (the
paper's reader does not check them) is kept in the log but is no vote (``labelling.vote``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from tqdm import tqdm

from medssr_nemo.artifacts import fingerprint, is_finished, make_card, write_json_atomic, write_jsonl_atomic
from medssr_nemo.eval.answering import WorkItem, answer_items
from medssr_nemo.eval.protocol import EvalProtocol, sample_seed
from medssr_nemo.eval.redecode import make_redecoder
from medssr_nemo.labelling.report import SKIPPED_PROMPT_TOO_LONG, label_report, not_an_option
from medssr_nemo.labelling.samples_log import SamplesLog
from medssr_nemo.labelling.vote import VoteOutcome, VoteRule, count_votes, majority_vote
from medssr_nemo.prompts import encode_prompt, resolve_prompt_style
from medssr_nemo.records import QuestionRecord, write_records


# Labelling's own sampling defaults; every other field of the protocol is the evaluation's.
LABEL_SAMPLING = {"temperature": 1.0, "top_p": 1.0, "top_k": 0, "max_new_tokens": 256, "num_samples": 8}


@dataclass(frozen=True)
class LabelSettings:
    """Everything that decides which answers are sampled (the samples log's identity): the
    evaluation protocol each question is answered with, and the longest prompt labelled."""

    protocol: EvalProtocol = field(default_factory=lambda: EvalProtocol(**LABEL_SAMPLING))
    max_prompt_tokens: int = 1024

    @classmethod
    def build(cls, max_prompt_tokens: int = 1024, **protocol: Any) -> "LabelSettings":
        """Settings from ``EvalProtocol`` fields, labelling's defaults (``LABEL_SAMPLING``) for
        the ones not given."""
        return cls(EvalProtocol(**{**LABEL_SAMPLING, **protocol}), max_prompt_tokens)

    def identity(self) -> dict[str, Any]:
        """Flat: the protocol's fields and ``max_prompt_tokens``."""
        return {**self.protocol.fingerprint(), "max_prompt_tokens": self.max_prompt_tokens}


def records_digest(records: Sequence[QuestionRecord]) -> str:
    """sha256 over the ids and texts the policy sees, in order."""
    digest = hashlib.sha256()
    for record in records:
        digest.update(json.dumps([record.id, record.question, record.options]).encode())
    return digest.hexdigest()


class LabelJob:
    """One labelling run over ``records`` into ``out_dir`` (see the module docstring)."""

    def __init__(self, records: Sequence[QuestionRecord], settings: LabelSettings, rule: VoteRule,
                 out_dir: str | Path, name: str = "pseudo_labels", model_id: str = "",
                 extra_identity: dict[str, Any] | None = None, inputs: dict[str, str] | None = None,
                 model_type: str | None = None) -> None:
        ids = [r.id for r in records]
        if len(set(ids)) != len(ids):
            repeated = sorted({i for i in ids if ids.count(i) > 1})[:5]
            raise ValueError(f"question ids must be unique to label (and resume) by id; repeated: {repeated}")
        self.records = list(records)
        self.model_id, self.model_type = model_id, model_type   # the re-decode's family rules
        self.settings, self.rule = settings, rule
        self.inputs = dict(inputs or {})        # file -> sha256, for the card
        self.out_dir = Path(out_dir)
        self.records_path = self.out_dir / f"{name}.jsonl"
        self.votes_path = self.out_dir / f"{name}.votes.jsonl"
        self.card_path = self.out_dir / f"{name}.card.json"
        self.samples_path = self.out_dir / f"{name}.samples.jsonl"
        self.identity = {"records_sha256": records_digest(self.records), "num_questions": len(self.records),
                         "model": model_id, "settings": settings.identity(), **(extra_identity or {})}
        payload = {"identity": self.identity, "vote_rule": dataclasses.asdict(rule)}
        self.fingerprint = fingerprint(payload)

    # ------------------------------------------------------------------ state
    def finished(self) -> bool:
        """The card of this exact run (input, model, settings, vote rule) exists with its output."""
        return is_finished(self.card_path, self.records_path, self.fingerprint)

    def open_log(self) -> SamplesLog:
        return SamplesLog(self.samples_path, self.identity)

    def pending(self, log: SamplesLog) -> list[QuestionRecord]:
        return [r for r in self.records if r.id not in log.entries]

    # ------------------------------------------------------------------ sampling
    def sample(self, engine: Any, tokenizer: Any, questions_per_chunk: int = 8, progress: bool = True,
               log: SamplesLog | None = None) -> SamplesLog:
        """Answer every question not yet in the log, ``questions_per_chunk`` questions per
        engine call, appending each chunk to the log as it finishes."""
        log = log or self.open_log()
        todo = self.pending(log)
        if not todo:
            return log
        s = self.settings
        style = resolve_prompt_style(s.protocol.prompt_style, self.model_id, tokenizer)
        protocol = dataclasses.replace(s.protocol, prompt_style=style)
        redecoder = (make_redecoder(tokenizer, style, self.model_id, self.model_type, new_tokens=1)
                     if protocol.recovery else None)
        bar = tqdm(total=len(self.records), initial=len(self.records) - len(todo), desc="pseudo-labelling",
                   unit="q", disable=not progress)
        for start in range(0, len(todo), max(1, questions_per_chunk)):
            chunk = todo[start:start + max(1, questions_per_chunk)]
            items, finished = [], []
            for record in chunk:
                prompt = tuple(encode_prompt(record, tokenizer, style))
                if len(prompt) > s.max_prompt_tokens:
                    finished.append({"id": record.id, "skipped": SKIPPED_PROMPT_TOO_LONG, "prompt_tokens": len(prompt)})
                    continue
                items += [WorkItem("pseudo-label", record, prompt, k, sample_seed(protocol.seed, record.id, k))
                          for k in range(protocol.num_samples)]
            rows = answer_items(engine, items, protocol, redecoder, self.model_id) if items else []
            by_id: dict[str, list[dict[str, Any]]] = {}
            for row in rows:
                by_id.setdefault(row["id"], []).append(row)
            for record in chunk:
                if record.id in by_id:
                    finished.append(_entry(record.id, sorted(by_id[record.id], key=lambda r: r["sample"])))
            log.append(finished)
            bar.update(len(chunk))
        bar.close()
        return log

    # ------------------------------------------------------------------ voting and output
    def finalize(self, log: SamplesLog, seconds: float | None = None) -> dict[str, Any]:
        """Vote on every question, write records, votes and card; return the card."""
        missing = self.pending(log)
        if missing:
            raise RuntimeError(f"{len(missing)} questions have no samples yet (first: {missing[0].id}); sample first")
        outcomes: dict[str, VoteOutcome] = {}
        labelled, votes = [], []
        for record in self.records:
            entry = log.entries[record.id]
            if entry.get("skipped"):
                votes.append({"id": record.id, "kept": False, "dropped_because": entry["skipped"]})
                continue
            outcome = majority_vote(count_votes(entry["answers"], record.letters), self.rule,
                                    num_samples=len(entry["answers"]), question_id=record.id)
            outcomes[record.id] = outcome
            votes.append({"id": record.id, "kept": outcome.kept, "dropped_because": outcome.dropped_because,
                          "label": outcome.label, "agreement": outcome.agreement, "vote_counts": outcome.vote_counts,
                          "tied": outcome.tied, "answers": entry["answers"], "gold": record.gold})
            if outcome.kept:
                labelled.append(dataclasses.replace(
                    record, label=outcome.label, label_source="pseudo", agreement=outcome.agreement,
                    vote_counts=outcome.vote_counts,
                    meta={**record.meta, "pseudo_label": {
                        "samples": len(entry["answers"]), "recovered": sum(entry["recovered"]),
                        "unanswered": sum(a is None for a in entry["answers"]),
                        "answers_not_an_option": not_an_option(entry["answers"], record.letters),
                        "tied": outcome.tied}},
                ))
        write_records(labelled, self.records_path)
        write_jsonl_atomic(self.votes_path, votes)
        card = make_card("medssr label", self.fingerprint, self.records_path,
                         outputs={"votes": self.votes_path.name, "samples": self.samples_path.name},
                         identity=self.identity, inputs=self.inputs, vote_rule=dataclasses.asdict(self.rule),
                         report=label_report(self.records, log.entries, outcomes),
                         seconds=None if seconds is None else round(seconds, 1))
        write_json_atomic(self.card_path, card)
        return card

    def run(self, engine: Any, tokenizer: Any, questions_per_chunk: int = 8, progress: bool = True) -> dict[str, Any]:
        started = time.perf_counter()
        log = self.sample(engine, tokenizer, questions_per_chunk, progress)
        return self.finalize(log, seconds=time.perf_counter() - started)


def _entry(question_id: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """One question's line in the samples log (per-sample lists, in sample order)."""
    return {
        "id": question_id,
        "answers": [r["answer"] for r in rows],
        "free_answers": [r["free_answer"] for r in rows],
        "recovered": [bool(r["recovered"]) for r in rows],
        "follows_format": [bool(r["follows_format"]) for r in rows],
        "finish_reasons": [r["finish_reason"] for r in rows],
        "num_tokens": [r["num_tokens"] for r in rows],
        # short digests of the completions: a resumed run can be checked sample by sample
        "completion_sha1": [hashlib.sha1(r["completion"].encode()).hexdigest()[:12] for r in rows],
    }
