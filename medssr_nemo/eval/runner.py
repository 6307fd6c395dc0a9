"""``medssr eval``: every configured checkpoint on every configured benchmark, resumable.

Layout of ``eval.output_dir`` (default ``<output_dir>/eval``)::

    <checkpoint label>/<benchmark>/protocol.json         identity: settings, prompt style, question ids,
                                                          benchmark file sha256, checkpoint weight fingerprint
    <checkpoint label>/<benchmark>/generations.partial.jsonl   append-only, one line per finished sample
    <checkpoint label>/<benchmark>/generations.jsonl     final: every generation, question order
    <checkpoint label>/<benchmark>/metrics.json          accuracy mean/std over samples, 95% interval over
                                                          questions, invalid/recovered counts
    summary.json, summary.md, summary.png                 all checkpoints side by side

Resuming: a checkpoint's work over all its benchmarks (benchmark order, then prompt length) is cut
into fixed chunks of ``eval.batch_size`` (question, sample) pairs; a chunk whose samples are all
done (partial logs, finished benchmarks' generations) is skipped, any other chunk is generated
whole (so every engine call sees exactly the batch an uninterrupted run would) and only its
missing samples are appended. Seeds come from (seed, question id, sample). A rerun with other
settings in the same directory is refused rather than mixed; a rerun after the benchmark file or
the checkpoint's weights changed moves the old results to ``superseded/`` and evaluates again,
saying why.

Prompt style per checkpoint (recorded in each result): ``eval.checkpoint_prompt_styles[i]``, else
``eval.prompt_style``, else ``model.prompt_style`` for ``model.path`` itself, else ``auto`` (base
when the name says Base or the tokenizer has no chat template, as the paper's script chooses).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from medssr_nemo.artifacts import read_json, write_json_atomic, write_jsonl_atomic, write_text_atomic
from medssr_nemo.artifacts import file_sha256
from medssr_nemo.config.schema.answer import answer_extraction
from medssr_nemo.eval.answering import WorkItem, answer_items
from medssr_nemo.eval.benchmarks import benchmark_names, get_benchmark, load_report, subsample
from medssr_nemo.eval.metrics import benchmark_metrics, summarize
from medssr_nemo.eval.protocol import EvalProtocol, sample_seed
from medssr_nemo.eval.redecode import make_redecoder
from medssr_nemo.eval.report import markdown_table, write_chart
from medssr_nemo.eval.results import checkpoint_correctness
from medssr_nemo.eval.store import PartialLog, row_key
from medssr_nemo.eval.suite import effective_benchmarks
from medssr_nemo.models.fingerprint import name_only, weights_fingerprint
from medssr_nemo.models.loading import load_tokenizer, model_type_or_none, resolve_model_dir
from medssr_nemo.prompts import encode_prompt
from medssr_nemo.prompts import resolve_prompt_style
from medssr_nemo.records import QuestionRecord
from medssr_nemo.rollout.for_checkpoint import engine_for_checkpoint
from medssr_nemo.rollout.interfaces import RolloutEngine

log = logging.getLogger(__name__)

PolicyLoader = Callable[[str], tuple[RolloutEngine, Any]]   # reference -> (engine, tokenizer)
ChunkHook = Callable[[str, int], None]                       # (benchmark, samples written so far)


@dataclass(frozen=True)
class Checkpoint:
    label: str          # directory name and table row
    reference: str      # what load_causal_lm takes
    prompt_style: str = "auto"   # chat | base | auto (resolved when evaluated)


@dataclass
class LoadedBenchmark:
    name: str
    rare: bool
    records: list[QuestionRecord]   # the questions evaluated (after eval.limit)
    total: int                      # questions in the benchmark
    # the re-decode's letters: every gold letter of the whole benchmark (as the paper's script)
    letters: tuple[str, ...] = ()
    files_sha256: dict[str, str] = dataclasses.field(default_factory=dict)   # benchmark file -> sha256
    report: dict[str, Any] = dataclasses.field(default_factory=dict)         # load report (placeholders, ...)


def checkpoints_from_config(cfg: Any) -> list[Checkpoint]:
    """``eval.checkpoints`` (default: ``model.path``) with labels given or derived from the refs."""
    references = list(cfg.eval.checkpoints) or [cfg.model.path]
    labels = list(cfg.eval.checkpoint_labels) or _derive_labels(references)
    if len(set(labels)) != len(labels):
        raise ValueError(f"checkpoint labels must be unique, got {labels}; set eval.checkpoint_labels")
    styles = list(cfg.eval.checkpoint_prompt_styles) or [None] * len(references)
    return [Checkpoint(_safe(label), ref, _style_setting(cfg, ref, style))
            for label, ref, style in zip(labels, references, styles)]


def _style_setting(cfg: Any, reference: str, own: str | None) -> str:
    """The configured style of one checkpoint (see the module docstring), possibly ``auto``."""
    for style in (own, cfg.eval.prompt_style, cfg.model.prompt_style if reference == cfg.model.path else None):
        if style not in (None, "auto"):
            return style
    return "auto"


def checkpoint_prompt_style(checkpoint: Checkpoint) -> str:
    """``chat`` or ``base`` for ``checkpoint``; ``auto`` reads only its tokenizer."""
    if checkpoint.prompt_style in ("chat", "base"):
        return checkpoint.prompt_style

    return resolve_prompt_style("auto", checkpoint.reference, load_tokenizer(checkpoint.reference))


def _derive_labels(references: Sequence[str]) -> list[str]:
    labels = []
    for ref in references:
        if ref.startswith("embedded:"):
            labels.append(ref.split(":", 1)[1])
        else:
            parts = Path(ref.rstrip("/")).parts
            labels.append(parts[-1] if parts else ref)
    if len(set(labels)) != len(labels):  # e.g. two runs' "final" directories: add the parent
        labels = ["_".join(Path(ref.rstrip("/")).parts[-2:]) for ref in references]
    return labels


def _safe(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", label).strip("_") or "checkpoint"


def load_benchmarks(eval_cfg: Any) -> list[LoadedBenchmark]:
    """Every benchmark of the run (``eval.benchmarks`` then ``eval.custom_benchmarks``), loaded and
    subsampled; logs each count."""
    custom = dict(eval_cfg.custom_benchmarks)

    listed = effective_benchmarks(eval_cfg.benchmarks)    # + RareDis-Sub when the data has it
    names = listed + [n for n in custom if n not in listed]
    known = set(benchmark_names(custom))
    unknown = [n for n in names if n not in known and "." not in n and ":" not in n]
    if unknown:
        raise LookupError(f"unknown benchmark(s) {unknown} in eval.benchmarks; known: {', '.join(sorted(known))}")
    loaded = []
    for name in names:
        benchmark = get_benchmark(name, custom)
        records = benchmark.load()
        chosen = subsample(records, eval_cfg.limit, eval_cfg.seed, name)
        report = load_report(records)
        log.info("benchmark %-20s %5d questions%s%s", name, len(records),
                 f" (evaluating a subsample of {len(chosen)})" if len(chosen) < len(records) else "",
                 f"; {report['placeholder_options']} placeholder options (n/a, empty) in "
                 f"{report['questions_with_placeholder_options']} questions" if report["placeholder_options"] else "")
        letters = tuple(sorted({r.gold for r in records if r.gold}))
        loaded.append(LoadedBenchmark(name, bool(benchmark.rare), chosen, len(records), letters,
                                      _files_sha256(benchmark), report))
    return loaded


def _files_sha256(benchmark: Any) -> dict[str, str]:
    """sha256 of each file behind a benchmark (``{}`` for one that is not file-backed), named by
    file name (inside a directory: the path below it), so moving the data root changes nothing."""

    paths = [Path(p) for p in benchmark.paths()] if hasattr(benchmark, "paths") else []
    hashes = {}
    for path in paths:
        if path.is_dir():
            for file in sorted(p for p in path.rglob("*") if p.is_file()):
                hashes[f"{path.name}/{file.relative_to(path).as_posix()}"] = file_sha256(file)
        else:
            hashes[path.name] = file_sha256(path)
    return hashes


def default_policy_loader(cfg: Any) -> PolicyLoader:
    """The configured rollout engine on a checkpoint (rollout/for_checkpoint.py: a transformers
    model only for an engine that runs on one)."""
    def load(reference: str) -> tuple[RolloutEngine, Any]:
        return engine_for_checkpoint(cfg.rollout, cfg.eval.engine or cfg.rollout.engine, reference, cfg.model.dtype)
    return load


class LazyPolicy:
    """Loads a checkpoint only when some benchmark still needs generations; knows the weights'
    fingerprint and the checkpoint's prompt style without loading it, except for a hub id not
    in the local cache, whose weights can be fingerprinted only once the load has fetched them."""

    def __init__(self, loader: PolicyLoader, reference: str, prompt_style: str | None = None,
                 weights_fingerprint: str | None = None) -> None:
        self._loader, self.reference = loader, reference
        self.prompt_style = prompt_style
        self.weights_fingerprint = weights_fingerprint
        self._loaded: tuple[RolloutEngine, Any] | None = None

    def get(self) -> tuple[RolloutEngine, Any]:
        if self._loaded is None:
            started = time.perf_counter()
            self._loaded = self._loader(self.reference)
            log.info("loaded %s in %.1f s", self.reference, time.perf_counter() - started)
            if self.weights_fingerprint == name_only(self.reference):   # the load fetched the weights
                self.weights_fingerprint = weights_fingerprint(self.reference)
        return self._loaded

    def knows_only_the_name(self) -> bool:
        return self.weights_fingerprint == name_only(self.reference)


def _ids_digest(records: Sequence[QuestionRecord]) -> str:
    return hashlib.sha256("\n".join(r.id for r in records).encode()).hexdigest()


@dataclass
class _BenchmarkState:
    """One benchmark of one checkpoint: where it writes, and the samples finished so far."""

    bench: LoadedBenchmark
    out_dir: Path
    partial: PartialLog
    done: dict
    identity: dict[str, Any]
    metrics: dict[str, Any] | None = None

    def required(self, num_samples: int) -> int:
        return len(self.bench.records) * num_samples


# what a result's identity records about its inputs: a change of these re-runs the benchmark
_INPUT_KEYS = {"benchmark_files_sha256": "the benchmark file changed",
               "checkpoint_weights_sha256": "the checkpoint's weights changed"}
_RESULT_FILES = ("protocol.json", "generations.partial.jsonl", "generations.jsonl", "metrics.json")


def _open_benchmark(bench: LoadedBenchmark, policy: LazyPolicy, protocol: EvalProtocol, out_dir: Path) -> _BenchmarkState:
    """Check the directory holds this exact evaluation (or nothing yet) and load what is done;
    results of an older benchmark file or older weights are moved aside and redone."""
    identity = {"benchmark": bench.name, "checkpoint": policy.reference, "protocol": protocol.fingerprint(),
                "num_questions": len(bench.records), "question_ids_sha256": _ids_digest(bench.records),
                "benchmark_files_sha256": bench.files_sha256, "checkpoint_weights_sha256": policy.weights_fingerprint}
    identity_path, metrics_path = out_dir / "protocol.json", out_dir / "metrics.json"
    state = _BenchmarkState(bench, out_dir, PartialLog(out_dir / "generations.partial.jsonl"), {}, identity)
    if identity_path.exists():
        stored = read_json(identity_path)
        if stored != identity:
            changed = sorted(k for k in identity if stored.get(k) != identity[k])
            reasons = [_INPUT_KEYS[k] + _reason_detail(k, stored, policy.reference) for k in changed if k in _INPUT_KEYS]
            if not reasons:
                raise ValueError(f"{out_dir} holds results made with other settings (differs in {changed}); "
                                 "set eval.output_dir to a new directory or delete that one")
            moved = _supersede(out_dir)
            log.warning("%s: evaluating again: %s; the earlier results are in %s", bench.name, "; ".join(reasons), moved)
            write_json_atomic(identity_path, identity)
        elif metrics_path.exists():
            log.info("%s: already evaluated (%s)", bench.name, metrics_path)
            state.metrics = read_json(metrics_path)
            return state
    else:
        write_json_atomic(identity_path, identity)
    state.done = state.partial.load()
    return state


def _reason_detail(key: str, stored: dict[str, Any], reference: str) -> str:
    if key not in stored:
        return " (not recorded by the earlier run)"
    if key == "checkpoint_weights_sha256" and stored[key] == name_only(reference):
        return " (the earlier run recorded only the hub id, not its weights)"
    return ""


def _recorded_weights(out_dir: Path) -> str | None:
    """The weight fingerprint a benchmark's stored result names (None: no result, or none recorded)."""
    path = out_dir / "protocol.json"
    return read_json(path).get("checkpoint_weights_sha256") if path.exists() else None


def _record_loaded_weights(states: Sequence[_BenchmarkState], policy: LazyPolicy) -> None:
    """After the load fetched a hub checkpoint: results opened under its name alone are recorded
    with the fetched weights' fingerprint, so the next run (weights now cached) reuses them."""
    for state in states:
        if state.identity["checkpoint_weights_sha256"] != policy.weights_fingerprint and \
                state.identity["checkpoint_weights_sha256"] == name_only(policy.reference):
            state.identity = {**state.identity, "checkpoint_weights_sha256": policy.weights_fingerprint}
            write_json_atomic(state.out_dir / "protocol.json", state.identity)


def _supersede(out_dir: Path) -> Path:
    """Move a benchmark's result files to ``out_dir/superseded/<n>/`` (kept, never mixed)."""
    root = out_dir / "superseded"
    number = 1 + max((int(p.name) for p in root.glob("*") if p.name.isdigit()), default=0)
    target = root / str(number)
    target.mkdir(parents=True)
    for name in _RESULT_FILES:
        if (out_dir / name).exists():
            shutil.move(str(out_dir / name), target / name)
    return target


def _finish_benchmark(state: _BenchmarkState, protocol: EvalProtocol) -> dict[str, Any]:
    bench = state.bench
    rows = [state.done[(bench.name, r.id, s)] for r in bench.records for s in range(protocol.num_samples)]
    metrics = {"benchmark": bench.name, "rare": bench.rare, "benchmark_size": bench.total,
               "prompt_style": protocol.prompt_style, "answer_extraction": protocol.answer_extraction,
               "load_report": bench.report, **benchmark_metrics(rows, protocol.num_samples)}
    write_jsonl_atomic(state.out_dir / "generations.jsonl", rows)
    write_json_atomic(state.out_dir / "metrics.json", metrics)
    state.partial.path.unlink(missing_ok=True)   # the final file now holds every row
    return metrics


def evaluate_checkpoint(benchmarks: Sequence[LoadedBenchmark], policy: LazyPolicy, protocol: EvalProtocol,
                        out_root: Path, batch_size: int, progress: bool = True,
                        after_chunk: ChunkHook | None = None) -> dict[str, dict[str, Any]]:
    """Metrics of one checkpoint on every benchmark (``out_root/<benchmark>``), generating only
    what the partial logs lack. Work is one list over all benchmarks (benchmark order, then
    prompt length), cut into chunks of ``batch_size``: a benchmark with a few questions shares
    engine calls with the next one instead of decoding a batch of its own."""
    if policy.prompt_style is not None:
        protocol = dataclasses.replace(protocol, prompt_style=policy.prompt_style)
    if policy.knows_only_the_name() and any(
            _recorded_weights(out_root / b.name) not in (None, policy.weights_fingerprint) for b in benchmarks):
        policy.get()   # results name other weights: fetch this hub id's weights to compare them
    states = [_open_benchmark(b, policy, protocol, out_root / b.name) for b in benchmarks]
    for state in states:
        if state.metrics is None and len(state.done) == state.required(protocol.num_samples):
            state.metrics = _finish_benchmark(state, protocol)
    if any(state.metrics is None for state in states):
        engine, tokenizer = policy.get()
        _record_loaded_weights(states, policy)
        for state in states:   # finished benchmarks' rows let their chunks be recognised as done
            if state.metrics is not None and (state.out_dir / "generations.jsonl").exists():
                rows = [json.loads(line) for line in (state.out_dir / "generations.jsonl").read_text().splitlines()]
                state.done = {row_key(r): r for r in rows}
        _generate_missing(states, engine, tokenizer, protocol, batch_size, progress, after_chunk,
                          label=out_root.name, reference=policy.reference)
    return {state.bench.name: state.metrics for state in states}  # type: ignore[misc]


def evaluate_benchmark(bench: LoadedBenchmark, policy: LazyPolicy, protocol: EvalProtocol, out_dir: Path,
                       batch_size: int, progress: bool = True, after_chunk: ChunkHook | None = None) -> dict[str, Any]:
    """Metrics of one checkpoint on one benchmark, written to ``out_dir`` (named after the benchmark)."""
    if out_dir.name != bench.name:
        raise ValueError(f"evaluate_benchmark writes to <root>/{bench.name}; got {out_dir}")
    return evaluate_checkpoint([bench], policy, protocol, out_dir.parent, batch_size, progress, after_chunk)[bench.name]


def _generate_missing(states: Sequence[_BenchmarkState], engine: RolloutEngine, tokenizer: Any, protocol: EvalProtocol,
                      batch_size: int, progress: bool, after_chunk: ChunkHook | None, label: str,
                      reference: str = "") -> None:
    from tqdm import tqdm

    work: list[tuple[_BenchmarkState, WorkItem]] = []
    for state in states:
        records = state.bench.records
        prompts = {r.id: tuple(encode_prompt(r, tokenizer, protocol.prompt_style)) for r in records}
        order = sorted(range(len(records)), key=lambda i: (len(prompts[records[i].id]), i))
        work += [(state, WorkItem(state.bench.name, records[i], prompts[records[i].id], s,
                                  sample_seed(protocol.seed, records[i].id, s), state.bench.letters))
                 for i in order for s in range(protocol.num_samples)]
    redecoder = None
    if protocol.recovery:
        model_type = model_type_or_none(reference)
        redecoder = make_redecoder(tokenizer, protocol.prompt_style, reference, model_type)  # type: ignore[arg-type]

    started, generated = time.perf_counter(), 0
    names = "+".join(state.bench.name for state in states if state.metrics is None)
    with tqdm(total=len(work), initial=sum(len(state.done) for state in states), desc=f"{label}/{names}",
              unit="sample", disable=not progress, dynamic_ncols=True) as bar:
        for start in range(0, len(work), batch_size):
            chunk = work[start:start + batch_size]
            if all((w.benchmark, w.record.id, w.sample) in state.done for state, w in chunk):
                continue
            rows = answer_items(engine, [w for _, w in chunk], protocol, redecoder, model_name=reference)
            touched: dict[str, _BenchmarkState] = {}
            for (state, _), row in zip(chunk, rows):
                if row_key(row) not in state.done:
                    touched.setdefault(state.bench.name, state)
                    state.done[row_key(row)] = row
                    generated += 1
                    bar.update(1)
            for state in touched.values():
                state.partial.append([r for r in rows if r["benchmark"] == state.bench.name
                                      and state.done.get(row_key(r)) is r])
                if len(state.done) == state.required(protocol.num_samples):
                    state.metrics = _finish_benchmark(state, protocol)
            if after_chunk is not None:
                last = chunk[-1][0]
                after_chunk(last.bench.name, len(last.done))
    elapsed = time.perf_counter() - started
    questions = generated / protocol.num_samples
    log.info("%s: %d samples in %.1f s (%.2f questions/s)", label, generated, elapsed,
             questions / elapsed if elapsed > 0 else 0.0)


def _check_references(checkpoints: Sequence[Checkpoint]) -> None:
    """Every checkpoint is loadable by name before the first one is evaluated: a path that does
    not exist is one clear error, not a hub traceback an hour in."""

    for ckpt in checkpoints:
        try:
            resolve_model_dir(ckpt.reference)
        except FileNotFoundError as err:
            raise FileNotFoundError(f"checkpoint {ckpt.label!r}: {err}") from None


def run_eval(cfg: Any, policy_loader: PolicyLoader | None = None, progress: bool = True,
             after_chunk: ChunkHook | None = None) -> dict[str, Any]:
    """Evaluate every checkpoint on every benchmark; write the summary files; return the summary."""
    eval_cfg = cfg.eval
    out_root = Path(eval_cfg.output_dir or Path(cfg.output_dir) / "eval")

    protocol = EvalProtocol.from_config(eval_cfg, cfg.model.prompt_style, answer_extraction(cfg, "eval"))
    checkpoints_cfg = checkpoints_from_config(cfg)
    _check_references(checkpoints_cfg)
    benchmarks = load_benchmarks(eval_cfg)
    loader = policy_loader or default_policy_loader(cfg)
    checkpoints = []
    for ckpt in checkpoints_cfg:
        style = checkpoint_prompt_style(ckpt)
        policy = LazyPolicy(loader, ckpt.reference, style, weights_fingerprint(ckpt.reference))
        log.info("%s: %s prompts (%s), weights %s", ckpt.label, style,
                 "as configured" if ckpt.prompt_style != "auto" else "chosen from its name and tokenizer",
                 (policy.weights_fingerprint or "")[:12])
        per_benchmark = evaluate_checkpoint(benchmarks, policy, protocol, out_root / ckpt.label,
                                            eval_cfg.batch_size, progress, after_chunk)
        correctness = checkpoint_correctness(out_root / ckpt.label, per_benchmark)   # for the intervals
        checkpoints.append({"label": ckpt.label, "reference": ckpt.reference, "prompt_style": style,
                            "weights_sha256": policy.weights_fingerprint, "benchmarks": per_benchmark,
                            **summarize(per_benchmark, {b.name: b.rare for b in benchmarks}, correctness)})
        del policy  # free the model before the next checkpoint loads
    styles = sorted({c["prompt_style"] for c in checkpoints})
    shared = {**protocol.fingerprint(), "prompt_style": styles[0] if len(styles) == 1 else "per checkpoint"}
    summary = {"benchmarks": [b.name for b in benchmarks], "rare": {b.name: b.rare for b in benchmarks},
               "protocol": shared, "limit": eval_cfg.limit, "checkpoints": checkpoints}
    _write_reports(summary, out_root, chart=eval_cfg.chart)
    return summary


def _write_reports(summary: dict[str, Any], out_root: Path, chart: bool) -> None:
    write_json_atomic(out_root / "summary.json", summary)
    write_text_atomic(out_root / "summary.md", markdown_table(summary))
    if chart:
        write_chart(summary, out_root / "summary.png")
    log.info("summary written to %s", out_root)
