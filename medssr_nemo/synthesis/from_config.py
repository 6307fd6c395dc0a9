"""``run_synthesis(cfg)``: build every part a synthesis run needs from the config, then run it.

Parts (each replaceable by the caller, e.g. a test or the pipeline that already holds one):
knowledge source (``synthesis.knowledge`` via the registry), decontamination index (the data
layer's, over the evaluation suite), seed questions (the decontaminated training pools), the
synthesizer (``synthesis.synthesizer`` via the registry), the quality filters.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import Any, Sequence

from medssr_nemo import registry
from medssr_nemo.data.eval_suite import load_eval_suite
from medssr_nemo.data.real import real_decontaminator
from medssr_nemo.records import QuestionRecord
from medssr_nemo.synthesis.audit import audit_records, auditor_for
from medssr_nemo.synthesis.chunked import SynthesisOutputs, check_plan_supported, config_identity, synthesize_to, target_of
from medssr_nemo.synthesis.filters import QualityFilter
from medssr_nemo.synthesis.interfaces import Synthesizer
from medssr_nemo.synthesis.plan import plan_slots
from medssr_nemo.synthesis.seeds import load_seed_pool

log = logging.getLogger(__name__)


def build_knowledge(cfg: Any) -> Any:
    factory = registry.get("knowledge_source", cfg.synthesis.knowledge)
    return factory(dict(cfg.synthesis.knowledge_options))


def build_decontaminator(cfg: Any) -> Any:
    return real_decontaminator(**dataclasses.asdict(cfg.data.decontam))


def run_synthesis(cfg: Any, *, knowledge: Any = None, decontaminator: Any = None,
                  seeds: Sequence[QuestionRecord] | None = None, synthesizer: Synthesizer | None = None,
                  stop_after_chunks: int | None = None) -> SynthesisOutputs:
    syn = cfg.synthesis
    timings: dict[str, float] = {}
    inputs: dict[str, Any] = {}

    def timed(name: str, build):
        started = time.perf_counter()
        value = build()
        timings[name] = round(time.perf_counter() - started, 2)
        return value

    target = target_of(syn)
    plan = plan_slots(syn.num_questions, target, syn.seed)   # nonrare dims fixed up below
    if syn.filters.decontaminate and decontaminator is None:
        decontaminator = timed("decontaminator", lambda: build_decontaminator(cfg))
    needs_seeds = any(not s.rare for s in plan) or syn.synthesizer != "kg"
    if seeds is None and needs_seeds and synthesizer is None:
        seeds, seed_summary = timed("seeds", lambda: load_seed_pool(syn.seed_pools, decontaminator,
                                                                    cfg.data.stage1_seed_share))
        inputs["seeds"] = seed_summary
    if synthesizer is None:
        if knowledge is None:
            knowledge = timed("knowledge", lambda: build_knowledge(cfg))
        factory = registry.get("synthesizer", syn.synthesizer)
        synthesizer = timed("synthesizer", lambda: factory(cfg, knowledge=knowledge, seeds=list(seeds or [])))
    if knowledge is not None:
        inputs["knowledge"] = knowledge.describe()
    if synthesizer.nonrare_dimensions:
        plan = plan_slots(syn.num_questions, target, syn.seed, synthesizer.nonrare_dimensions)
    check_plan_supported(target, synthesizer)
    if hasattr(synthesizer, "prepare"):
        synthesizer.prepare(plan)
    inputs["synthesizer"] = synthesizer.describe()
    if decontaminator is not None:
        inputs["eval_files"] = load_eval_suite().file_sha256
    quality = QualityFilter.from_config(syn.filters, decontaminator)
    identity = {"config": config_identity(cfg), "inputs": inputs}
    audit = None
    if knowledge is not None:
        auditor = timed("auditor", lambda: auditor_for(knowledge, syn.distinct_margin, syn.num_options,
                                                        getattr(synthesizer, "builder", None)))
        audit = (lambda records: audit_records(records, auditor)) if auditor is not None else None
    log.info("synthesis setup: %s", timings)
    return synthesize_to(Path(cfg.output_dir), syn.output_name, synthesizer, plan, target, quality, identity,
                         syn.chunk_size, syn.max_attempts, syn.show_progress, stop_after_chunks, audit)
