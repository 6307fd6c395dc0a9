"""Run the pipeline's steps in order, deciding for each: skip (finished with the same
fingerprint and intact outputs), resume (interrupted with the same fingerprint: the step's own
resume state is kept), or run afresh (new, or something it depends on changed: its directory is
cleared first, and the run says what changed). Every decision is printed and kept in the manifest.

Under torchrun/srun every rank runs this loop: training stages on every rank; labelling and
evaluation on every rank too, each sampling its share (``every_rank_generates``, rollout/rank_split.py:
one collective per engine call, so no long wait between collectives); the other steps on the main
rank while the rest wait for the step's stamp (a file poll, not a collective, so a long step cannot
hit a process-group timeout).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from omegaconf import OmegaConf

from medssr_nemo import distributed
from medssr_nemo.artifacts import fingerprint, remove_tree
from medssr_nemo.config import MedSSRConfig
from medssr_nemo.pipeline.context import PipelineContext, Step, StepCallback
from medssr_nemo.pipeline.manifest import (Manifest, changed_settings, identify_files, now, read_stamp, versions,
                                           write_stamp)
from medssr_nemo.pipeline.steps import STEPS, dependents
from medssr_nemo.rollout import rank_split

Echo = Callable[[str], None]


@dataclass
class PipelineResult:
    run_dir: Path
    report: Path | None
    actions: dict[str, str] = field(default_factory=dict)   # step -> skipped | resumed | ran | reran | disabled
    seconds: float = 0.0


@dataclass
class _Decision:
    action: str                 # skip | resume | run | rerun
    reason: str = ""


def _decide(step: Step, ctx: PipelineContext, stamp: dict[str, Any] | None, fp: str, settings: dict[str, Any],
            inputs: dict[str, str], upstream: dict[str, str], out: Path) -> _Decision:
    if stamp is None:
        return _Decision("run")
    if stamp.get("fingerprint") == fp:
        if stamp.get("status") != "done":
            how = "failed" if stamp.get("status") == "failed" else "was interrupted"
            return _Decision("resume", f"it {how} earlier; continuing from what it saved")
        try:
            intact = identify_files(step.output_files(ctx, out), out) == stamp.get("outputs")
        except FileNotFoundError:
            intact = False
        return _Decision("skip") if intact else _Decision("rerun", "its outputs were changed or removed")
    reasons = []
    old_upstream = stamp.get("upstream", {})
    moved = [name for name in upstream if old_upstream.get(name) != upstream[name]]
    if moved:
        reasons.append(f"{', '.join(moved)} changed")
    changes = changed_settings(stamp.get("settings", {}), settings)
    if changes:
        reasons.append("settings changed (" + "; ".join(changes) + ")")
    changed_inputs = sorted(k for k in set(inputs) | set(stamp.get("inputs", {}))
                            if inputs.get(k) != stamp.get("inputs", {}).get(k))
    if changed_inputs and not moved:
        reasons.append("input files changed (" + ", ".join(changed_inputs) + ")")
    return _Decision("rerun", "; ".join(reasons) or "its fingerprint changed")


def _clear(out: Path, keep: Sequence[str]) -> None:
    """Empty a step directory before it runs again, except the files the step reuses itself
    (moved aside and back, untouched)."""
    aside = {name: out.parent / f".{out.name}.kept.{Path(name).name}" for name in keep if (out / name).is_file()}
    for name, parked in aside.items():
        os.replace(out / name, parked)
    remove_tree(out)
    for name, parked in aside.items():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        os.replace(parked, out / name)


def _wait_for(out: Path, fp: str, poll_s: float = 1.0) -> None:
    """Non-main ranks: block until the main rank stamps the step done with this fingerprint."""
    while True:
        stamp = read_stamp(out)
        if stamp and stamp.get("fingerprint") == fp and stamp.get("status") == "done":
            return
        if stamp and stamp.get("status") == "failed":
            raise RuntimeError(f"step {out.name} failed on the main rank: {stamp.get('error')}")
        time.sleep(poll_s)


def run_pipeline(cfg: MedSSRConfig, *, run_dir: str | Path | None = None, shared_dir: str | Path | None = None,
                 progress: bool = True, train_callbacks: dict[str, Sequence[StepCallback]] | None = None,
                 echo: Echo = print) -> PipelineResult:
    """Run (or resume) every step of one pipeline in ``run_dir`` (default ``cfg.output_dir``)."""
    distributed.init_distributed()
    main = distributed.is_main()
    run_path = Path(run_dir or cfg.output_dir)
    ctx = PipelineContext(cfg, run_path, Path(shared_dir) if shared_dir else run_path, progress, train_callbacks or {})
    say: Echo = echo if main else (lambda _text: None)
    manifest = Manifest(run_path) if main else None
    resolved = OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True)
    if manifest is not None:
        run_path.mkdir(parents=True, exist_ok=True)
        manifest.set(run_dir=str(run_path.resolve()), config=resolved, versions=versions(), updated_at=now())
    result = PipelineResult(run_path, None)
    started = time.perf_counter()
    fingerprints: dict[str, str] = {}
    rerun_from: str | None = None
    active = [s for s in STEPS if s.disabled_reason(cfg) is None]
    for step in STEPS:
        reason = step.disabled_reason(cfg)
        if reason is not None:
            result.actions[step.name] = "disabled"
            if manifest is not None:
                manifest.update_step(step.name, status="disabled", reason=reason)
            continue
        number = f"[{active.index(step) + 1}/{len(active)}]"
        out = ctx.dir(step)
        upstream = {name: fingerprints[name] for name in step.upstream(cfg) if name in fingerprints}
        settings = step.settings(cfg)
        inputs = identify_files(step.input_files(ctx), run_path)
        fp = fingerprint({"step": step.name, "settings": settings, "inputs": inputs, "upstream": upstream})
        distributed.barrier()   # every rank reads the stamp before the main rank rewrites it
        decision = _decide(step, ctx, read_stamp(out), fp, settings, inputs, upstream, out)
        distributed.barrier()
        fingerprints[step.name] = fp
        if decision.action == "skip":
            say(f"{number} {step.title}: done earlier, skipped ({out})")
            result.actions[step.name] = "skipped"
            if manifest is not None and manifest.step(step.name).get("fingerprint") != fp:
                stamp = read_stamp(out) or {}
                manifest.update_step(step.name, **{k: v for k, v in stamp.items() if k != "step"}, directory=str(out))
            continue
        if decision.action == "rerun":
            if rerun_from is None:
                later = dependents(step.name, cfg)
                say(f"{number} {step.title}: {decision.reason} -> re-running it and what depends on it "
                    f"({', '.join(later) or 'nothing after it'})")
                rerun_from = step.name
            else:
                say(f"{number} {step.title}: re-running ({decision.reason})")
            if main:
                _clear(out, step.kept_on_rerun)
            distributed.barrier()
        elif decision.action == "resume":
            say(f"{number} {step.title}: resuming ({decision.reason})")
        else:
            say(f"{number} {step.title}")
        result.actions[step.name] = {"run": "ran", "rerun": "reran", "resume": "resumed"}[decision.action]
        _run_step(step, ctx, out, fp, settings, inputs, upstream, manifest, decision, main)
    result.seconds = time.perf_counter() - started
    report = run_path / "report" / "report.md"
    result.report = report if report.exists() else None
    if manifest is not None:
        manifest.set(updated_at=now(), total_seconds_last_invocation=round(result.seconds, 1))
    return result


def _run_step(step: Step, ctx: PipelineContext, out: Path, fp: str, settings: dict[str, Any], inputs: dict[str, str],
              upstream: dict[str, str], manifest: Manifest | None, decision: _Decision, main: bool) -> None:
    stamp = {"step": step.name, "fingerprint": fp, "status": "running", "settings": settings, "inputs": inputs,
             "upstream": upstream, "started_at": now()}
    if main:
        out.mkdir(parents=True, exist_ok=True)
        previous = read_stamp(out) or {}
        stamp["attempts"] = int(previous.get("attempts", 0)) + 1 if decision.action == "resume" else 1
        write_stamp(out, stamp)
    if manifest is not None:
        manifest.update_step(step.name, status="running", fingerprint=fp, settings=settings, inputs=inputs,
                             upstream=upstream, directory=str(out), started_at=stamp["started_at"],
                             action=decision.action, reason=decision.reason, versions=versions(),
                             finished_at=None, seconds=None)
    if not (main or step.collective):
        _wait_for(out, fp)
        return
    started = time.perf_counter()
    try:
        if step.every_rank_generates:  # labelling/evaluation: each rank samples its share
            with rank_split.every_rank_generates(), rank_split.rank_scratch(out, main) as where:
                summary = step.run(ctx, where)
        else:
            summary = step.run(ctx, out)
    except Exception as err:
        if main:   # the stamp keeps the fingerprint: the next run resumes this step
            error = f"{type(err).__name__}: {err}"
            write_stamp(out, {**stamp, "status": "failed", "error": error})
            if manifest is not None:
                manifest.update_step(step.name, status="failed", error=error)
        raise
    seconds = round(time.perf_counter() - started, 2)
    if step.collective:
        distributed.barrier()   # (the other ranks of a main-rank step are polling for the stamp below)
    if not main:
        return
    outputs = identify_files(step.output_files(ctx, out), out)
    done = {**stamp, "status": "done", "outputs": outputs, "finished_at": now(), "seconds": seconds, "summary": summary}
    write_stamp(out, done)
    if manifest is not None:
        manifest.update_step(step.name, status="done", outputs=outputs, finished_at=done["finished_at"], seconds=seconds,
                             summary=summary, recorded_inputs=step.recorded_inputs(out), error=None)
