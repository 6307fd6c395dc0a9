"""Run a synthesizer over a planned mix, filter, and write the result resumably.

Work is cut into chunks of ``synthesis.chunk_size`` planned questions. A finished chunk is
persisted (its records, then its report, each atomically) under ``<output_dir>/.<name>.parts/``;
after a kill the next run reloads finished chunks (re-feeding their records to the dedup index in
order) and continues with the first unfinished one. Every random choice derives from (seed, slot,
attempt), so the final JSONL is byte-identical to an uninterrupted run's. The final JSONL and the
card are written atomically; the card goes last, so its presence means the run finished, and a
rerun with the same config and inputs does nothing.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import shutil
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from medssr_nemo.artifacts import fingerprint, is_finished, make_card, write_json_atomic
from medssr_nemo.records import QuestionRecord, read_records, write_records
from medssr_nemo.synthesis.filters import FilterReport, QualityFilter
from medssr_nemo.synthesis.interfaces import Synthesizer
from medssr_nemo.synthesis.plan import DIMENSIONS, Slot, Target, distribution_report

log = logging.getLogger(__name__)
CARD_FORMAT = 1


class Interrupted(RuntimeError):
    """Raised by ``stop_after_chunks`` (tests simulate a kill with it)."""


@dataclass
class SynthesisOutputs:
    records_path: Path
    card_path: Path
    card: dict[str, Any]
    skipped: bool = False               # True when an identical finished run was found


@dataclass
class ChunkResult:
    records: list[QuestionRecord]
    generation_failures: dict[str, int] = field(default_factory=dict)
    failure_examples: dict[str, list[str]] = field(default_factory=dict)
    given_up: list[int] = field(default_factory=list)
    attempts: int = 0
    filters: dict[str, Any] = field(default_factory=dict)


def target_of(syn_cfg: Any) -> Target:
    return Target(alpha=syn_cfg.alpha, question_types=dict(syn_cfg.question_types),
                  difficulties=dict(syn_cfg.difficulties), categories=dict(syn_cfg.categories))


def check_plan_supported(target: Target, synthesizer: Synthesizer) -> None:
    """Fail early, naming the key, when the target asks for something the synthesizer cannot make."""
    supported = synthesizer.supported()
    keys = {"question_type": "question_types", "difficulty": "difficulties", "category": "categories"}
    for dimension in DIMENSIONS:
        allowed = supported.get(dimension)
        if allowed is None:
            continue
        unknown = sorted(set(target.normalised(dimension)) - set(allowed))
        if unknown:
            raise ValueError(f"synthesis.{keys[dimension]} names {unknown}, which the {synthesizer.name!r} "
                             f"synthesizer cannot make; allowed: {allowed}")


def generate_chunk(synthesizer: Synthesizer, slots: Sequence[Slot], quality: QualityFilter,
                   max_attempts: int) -> ChunkResult:
    """Attempt every slot until it yields a record that passes the filters, up to ``max_attempts``
    tries; candidates are filtered in slot order so the dedup index sees a deterministic order."""
    kept: dict[int, QuestionRecord] = {}
    failures: Counter[str] = Counter()
    examples: dict[str, list[str]] = {}
    pending = list(slots)
    attempts = 0
    for attempt in range(max_attempts):
        if not pending:
            break
        attempts += len(pending)
        candidates = synthesizer.synthesize(pending, attempt)
        if len(candidates) != len(pending):
            raise RuntimeError(f"synthesizer {synthesizer.name!r} returned {len(candidates)} candidates "
                               f"for {len(pending)} slots")
        for slot, candidate in zip(pending, candidates):
            if candidate.record is None:
                failures[candidate.reason] += 1
                samples = examples.setdefault(candidate.reason, [])
                if len(samples) < 5 and candidate.detail:
                    samples.append(f"slot {slot.index}: {candidate.detail[:300]}")
            elif quality.admit(candidate.record) is None:
                kept[slot.index] = candidate.record
        pending = [slot for slot in pending if slot.index not in kept]
    return ChunkResult(records=[kept[s.index] for s in slots if s.index in kept],
                       generation_failures=dict(sorted(failures.items())), failure_examples=examples,
                       given_up=[s.index for s in pending], attempts=attempts)


def run_chunks(synthesizer: Synthesizer, plan: list[Slot], quality: QualityFilter, parts_dir: Path,
               chunk_size: int, max_attempts: int, show_progress: bool = True,
               stop_after_chunks: int | None = None) -> tuple[list[QuestionRecord], list[ChunkResult], int]:
    """Generate (or reload) every chunk in order; see the module docstring. Returns the records,
    the per-chunk results and how many chunks were reloaded from an earlier, interrupted run."""
    from tqdm import tqdm

    num_chunks = math.ceil(len(plan) / chunk_size)
    records: list[QuestionRecord] = []
    results: list[ChunkResult] = []
    generated = reloaded = 0
    with tqdm(total=len(plan), desc=f"synth ({synthesizer.name})", unit="q", disable=not show_progress) as bar:
        for c in range(num_chunks):
            slots = plan[c * chunk_size:(c + 1) * chunk_size]
            records_path = parts_dir / f"chunk-{c:05d}.jsonl"
            report_path = parts_dir / f"chunk-{c:05d}.json"
            if report_path.exists() and records_path.exists():
                chunk_records = read_records(records_path)
                for record in chunk_records:
                    quality.remember(record)
                stored = json.loads(report_path.read_text(encoding="utf-8"))
                result = ChunkResult(records=chunk_records, **{k: v for k, v in stored.items() if k != "num_records"})
                reloaded += 1
            else:
                if stop_after_chunks is not None and generated >= stop_after_chunks:
                    raise Interrupted(f"stopped after {generated} generated chunk(s) (stop_after_chunks)")
                quality.report = FilterReport()
                result = generate_chunk(synthesizer, slots, quality, max_attempts)
                result.filters = quality.report.to_dict()
                write_records(result.records, records_path)
                write_json_atomic(report_path, {"num_records": len(result.records),
                                          "generation_failures": result.generation_failures,
                                          "failure_examples": result.failure_examples,
                                          "given_up": result.given_up, "attempts": result.attempts,
                                          "filters": result.filters})
                generated += 1
            records += result.records
            results.append(result)
            bar.update(len(slots))
            bar.set_postfix(kept=len(records), rare=sum(r.rare for r in records))
    if reloaded:
        log.info("resumed: %d finished chunk(s) reloaded from %s", reloaded, parts_dir)
    return records, results, reloaded


def summarise(plan: list[Slot], records: list[QuestionRecord], results: list[ChunkResult], target: Target,
              synthesizer: Synthesizer) -> dict[str, Any]:
    filters = FilterReport()
    failures: Counter[str] = Counter()
    examples: dict[str, list[str]] = {}
    for result in results:
        filters.merge(result.filters)
        failures.update(result.generation_failures)
        for reason, samples in result.failure_examples.items():
            mine = examples.setdefault(reason, [])
            mine.extend(samples[: 5 - len(mine)])
    given_up = [i for result in results for i in result.given_up]
    return {
        "counts": {"planned": len(plan), "written": len(records), "rare": sum(r.rare for r in records),
                   "given_up": len(given_up), "attempts": sum(r.attempts for r in results),
                   "by_question_type": dict(sorted(Counter(str(r.question_type) for r in records).items()))},
        "distribution": distribution_report(records, target, plan, synthesizer.nonrare_dimensions),
        "filters": filters.to_dict(),
        "generation_failures": {"counts": dict(sorted(failures.items())),
                                "examples": {k: v for k, v in sorted(examples.items())},
                                "given_up_slots": given_up[:50]},
    }


def synthesize_to(out_dir: Path, name: str, synthesizer: Synthesizer, plan: list[Slot], target: Target,
                  quality: QualityFilter, identity: dict[str, Any], chunk_size: int, max_attempts: int,
                  show_progress: bool = True, stop_after_chunks: int | None = None,
                  audit: Callable[[list[QuestionRecord]], dict[str, Any]] | None = None) -> SynthesisOutputs:
    """Chunked, resumable generation into ``<out_dir>/<name>.jsonl`` + ``<name>.card.json``;
    ``audit`` (records -> report) puts the knowledge-base audit of the set in the card."""
    records_path, card_path = out_dir / f"{name}.jsonl", out_dir / f"{name}.card.json"
    run_fingerprint = fingerprint(identity)
    if is_finished(card_path, records_path, run_fingerprint):
        return SynthesisOutputs(records_path, card_path, json.loads(card_path.read_text()), skipped=True)
    parts_dir = out_dir / f".{name}.parts"
    manifest = parts_dir / "manifest.json"
    if manifest.exists():
        stored = json.loads(manifest.read_text(encoding="utf-8")).get("fingerprint")
        if stored != run_fingerprint:
            raise ValueError(f"{parts_dir} holds an unfinished run with a different config or inputs; remove "
                             f"that directory to start over, or choose another output_dir / synthesis.output_name")
    else:
        parts_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(manifest, {"fingerprint": run_fingerprint})
    started = time.perf_counter()
    records, results, reloaded = run_chunks(synthesizer, plan, quality, parts_dir, chunk_size, max_attempts,
                                            show_progress, stop_after_chunks)
    write_records(records, records_path)
    card = make_card("medssr synth", run_fingerprint, records_path, card_format=CARD_FORMAT, **identity,
                     **summarise(plan, records, results, target, synthesizer),
                     # the only part of the card that differs between an interrupted and a straight run
                     run={"chunks": len(results), "chunks_reloaded": reloaded},
                     **({"audit": audit(records)} if audit is not None else {}))
    write_json_atomic(card_path, card)
    shutil.rmtree(parts_dir, ignore_errors=True)
    log.info("synthesis: %d records in %.1f s", len(records), time.perf_counter() - started)
    return SynthesisOutputs(records_path, card_path, card)


def config_identity(cfg: Any) -> dict[str, Any]:
    """The parts of the config that decide the output (progress display and chunking do not)."""
    syn = dataclasses.asdict(cfg.synthesis)
    syn.pop("show_progress", None)
    identity: dict[str, Any] = {"synthesis": syn}
    if cfg.synthesis.filters.decontaminate:
        identity["decontam"] = dataclasses.asdict(cfg.data.decontam)
    identity["stage1_seed_share"] = cfg.data.stage1_seed_share
    return identity
