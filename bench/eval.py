"""Evaluation throughput: questions per second of ``medssr eval``'s protocol (generation,
answer extraction and the constrained re-decode) for a policy, per benchmark and overall.

Settings are the ``eval`` config keys (the paper's protocol unless overridden); what this script
adds is timing: the model is loaded and warmed up on one question first, then each benchmark is
evaluated from scratch in a temporary directory and timed on its own. Questions per second
counts questions (each with ``eval.num_samples`` samples); new tokens per second counts every
generated token of the free generations.

    python bench/eval.py                                  # CPU: embedded SmolLM2, 2 questions per benchmark, 128 new tokens
    python bench/eval.py eval.limit=32 eval.max_new_tokens=2048 model.dtype=bfloat16 \\
        rollout.batch_size=128 eval.batch_size=128        # a GPU run with the paper's protocol
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

from medssr_nemo.cli.common import config_parser, parse_config
from medssr_nemo.config.schema.answer import answer_extraction
from medssr_nemo.eval.answering import WorkItem, answer_items
from medssr_nemo.eval.protocol import EvalProtocol, sample_seed
from medssr_nemo.eval.redecode import make_redecoder
from medssr_nemo.eval.runner import (LazyPolicy, checkpoint_prompt_style, checkpoints_from_config,
                                     default_policy_loader, evaluate_benchmark, load_benchmarks)
from medssr_nemo.models.loading import model_type_of
from medssr_nemo.prompts import encode_prompt

CPU_DEFAULTS = ["eval.limit=2", "eval.max_new_tokens=128"]


def main(argv: list[str]) -> int:
    own = argparse.ArgumentParser(add_help=False)
    own.add_argument("--json", help="also write the result as JSON to this file")
    own.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")
    args, rest = own.parse_known_args(argv)
    given = {a.split("=")[0] for a in rest if "=" in a and not a.startswith("-")}
    defaults = [d for d in CPU_DEFAULTS if d.split("=")[0] not in given]
    _, cfg = parse_config(config_parser("bench/eval.py", __doc__.split("\n\n")[0]), [*rest, *defaults])
    if args.threads:
        torch.set_num_threads(args.threads)
    checkpoint = checkpoints_from_config(cfg)[0]
    reference = checkpoint.reference
    protocol = dataclasses.replace(EvalProtocol.from_config(cfg.eval, cfg.model.prompt_style, answer_extraction(cfg, "eval")),
                                   prompt_style=checkpoint_prompt_style(checkpoint))

    benchmarks = load_benchmarks(cfg.eval)
    started = time.perf_counter()
    engine, tokenizer = default_policy_loader(cfg)(reference)
    load_s = time.perf_counter() - started
    _warm_up(engine, tokenizer, protocol, benchmarks[0].records[0], reference)

    policy = LazyPolicy(lambda _: (engine, tokenizer), reference)
    per_benchmark, total_q, total_s, total_tokens, total_cpu = {}, 0, 0.0, 0, 0.0
    with tempfile.TemporaryDirectory() as scratch:
        for bench in benchmarks:
            t0, c0 = time.perf_counter(), time.process_time()
            metrics = evaluate_benchmark(bench, policy, protocol, Path(scratch) / bench.name, cfg.eval.batch_size,
                                         progress=False)
            seconds, cpu_seconds = time.perf_counter() - t0, time.process_time() - c0
            rows = [json.loads(line) for line in (Path(scratch) / bench.name / "generations.jsonl").open()]
            tokens = sum(r["num_tokens"] for r in rows)
            per_benchmark[bench.name] = {
                "questions": len(bench.records), "samples": len(rows), "seconds": round(seconds, 2),
                "questions_per_s": round(len(bench.records) / seconds, 4),
                "cpu_seconds": round(cpu_seconds, 2),   # this process only: robust on a shared machine
                "questions_per_cpu_s": round(len(bench.records) / cpu_seconds, 4),
                "new_tokens_per_s": round(tokens / seconds, 1), "mean_new_tokens": round(tokens / len(rows), 1),
                "recovered_by_redecode": metrics["recovered_by_redecode"], "accuracy_pct": round(metrics["accuracy_pct_mean"], 2),
            }
            total_q, total_s, total_tokens = total_q + len(bench.records), total_s + seconds, total_tokens + tokens
            total_cpu += cpu_seconds
            print(f"{bench.name:<12} {per_benchmark[bench.name]}", file=sys.stderr)

    device = engine_device(engine)
    result = {
        "benchmark": "eval", "model": reference, "device": device,
        "gpu": torch.cuda.get_device_name(0) if device.startswith("cuda") else None,
        "cpu": platform.processor() or platform.machine(), "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__, "protocol": protocol.fingerprint(), "batch_size": cfg.eval.batch_size,
        "engine": cfg.eval.engine or cfg.rollout.engine, "engine_options": dict(cfg.rollout.options),
        "model_load_s": round(load_s, 1), "questions": total_q, "seconds": round(total_s, 1),
        "questions_per_s": round(total_q / total_s, 4), "new_tokens_per_s": round(total_tokens / total_s, 1),
        "cpu_seconds": round(total_cpu, 1), "questions_per_cpu_s": round(total_q / total_cpu, 4),
        "new_tokens_per_cpu_s": round(total_tokens / total_cpu, 1),
        "per_benchmark": per_benchmark,
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    return 0


def engine_device(engine: object) -> str:
    device = getattr(engine, "device", None)
    return str(device) if device is not None else "unknown"


def _warm_up(engine, tokenizer, protocol: EvalProtocol, record, reference: str) -> None:
    """One short generation and one re-decode, so first-call costs (allocations, compiled
    graphs) are not timed."""
    short = dataclasses.replace(protocol, max_new_tokens=min(8, protocol.max_new_tokens), num_samples=1)
    item = WorkItem("warmup", record, tuple(encode_prompt(record, tokenizer, protocol.prompt_style)), 0,
                    sample_seed(protocol.seed, record.id, 0))
    redecoder = make_redecoder(tokenizer, protocol.prompt_style, reference, model_type_of(reference))  # type: ignore[arg-type]
    answer_items(engine, [item], short, redecoder, reference)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
