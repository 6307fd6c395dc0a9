"""The figures of one ``bench/gpu_check.sh`` run against the goals, as ``summary.md`` (ready to
paste into bench/RESULTS.md) and ``summary.json``.

    python bench/gpu_summary.py OUT_DIR                 # after gpu_check.sh's steps
    python bench/gpu_summary.py --extract LOG JSON      # the last JSON object a step printed
"""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Any, Iterator

# Goals the check is held to (the engine against the best transformers mode on the same card;
# the megatron step's model FLOPs utilisation on one GPU).
ENGINE_SPEEDUP_GOAL = 1.8
ENGINE_H200_TOKENS_PER_S_GOAL = 10_000
MEGATRON_MFU_GOAL = 0.45


def last_json_object(text: str) -> dict[str, Any] | None:
    """The last JSON object in ``text``: one line (``json.dumps``) or indented over several lines,
    after any log lines a library printed before it."""
    lines = text.splitlines()
    for start in range(len(lines) - 1, -1, -1):
        if not lines[start].startswith("{"):
            continue
        try:
            value = json.loads("\n".join(lines[start:]))
        except json.JSONDecodeError:
            try:
                value = json.loads(lines[start])
            except json.JSONDecodeError:
                continue
        if isinstance(value, dict):
            return value
    return None


def read_json(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.exists() else None


def pytest_counts(path: Path) -> dict[str, int] | None:
    if not path.exists():
        return None
    root = ElementTree.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    counts = {key: sum(int(s.get(key, 0)) for s in suites) for key in ("tests", "failures", "errors", "skipped")}
    counts["passed"] = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    return counts


def step_rows(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    rows = [line.split("\t") for line in path.read_text().splitlines()[1:] if line.strip()]
    return [{"step": step, "exit_code": int(code), "seconds": int(seconds)} for step, code, seconds in rows]


def throughput_rows(results: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every measured variant of the GRPO step (a dict with tokens_per_s), named by its path."""
    for key, value in results.items():
        if isinstance(value, dict):
            name = f"{prefix}{key}"
            if "tokens_per_s" in value:
                yield name, value
            else:
                yield from throughput_rows(value, f"{name} / ")


def summarise(out: Path) -> dict[str, Any]:
    versions = read_json(out / "versions.json") or {}
    rollout = read_json(out / "rollout.json")
    grpo = read_json(out / "grpo.json")
    summary: dict[str, Any] = {
        "versions": versions, "steps": step_rows(out / "steps.tsv"),
        "pytest_gpu": pytest_counts(out / "pytest_gpu.xml"),
        "rollout": rollout, "profile": read_json(out / "profile.json"), "refit": read_json(out / "refit.json"),
        "grpo": grpo, "goals": {},
    }
    goals = summary["goals"]
    if rollout:
        fixed = rollout["results"].get("fixed") or next(iter(rollout["results"].values()))
        goals["engine_speedup_vs_best_generate"] = {
            "value": fixed["speedup"], "goal": ENGINE_SPEEDUP_GOAL, "met": fixed["speedup"] >= ENGINE_SPEEDUP_GOAL}
        if "H200" in rollout.get("device", ""):
            rate = fixed["tokens_per_s"]["engine"]
            goals["engine_tokens_per_s_h200"] = {"value": rate, "goal": ENGINE_H200_TOKENS_PER_S_GOAL,
                                                 "met": rate >= ENGINE_H200_TOKENS_PER_S_GOAL}
    if grpo:
        megatron = [row for name, row in throughput_rows(grpo.get("results", {})) if name.startswith("megatron")]
        best = max((row.get("mfu_vs_measured_peak") or 0.0 for row in megatron), default=None)
        if best:
            goals["megatron_mfu"] = {"value": best, "goal": MEGATRON_MFU_GOAL, "met": best >= MEGATRON_MFU_GOAL}
    return summary


def markdown(summary: dict[str, Any]) -> str:
    v = summary["versions"]
    lines = [f"## GPU check: {v.get('device', '?')}", "",
             f"Software: torch {v.get('torch')} (CUDA {v.get('cuda_runtime')}), transformers {v.get('transformers')}, "
             f"megatron-core {v.get('megatron-core')}, Python {v.get('python')}; nvidia-smi: {v.get('nvidia_smi')}", "",
             "| step | exit code | seconds |", "|---|---:|---:|"]
    lines += [f"| {r['step']} | {r['exit_code']} | {r['seconds']} |" for r in summary["steps"]]
    if summary["pytest_gpu"]:
        c = summary["pytest_gpu"]
        lines += ["", f"`pytest -m gpu`: {c['passed']} passed, {c['failures']} failed, {c['errors']} errors, "
                      f"{c['skipped']} skipped"]
    rollout = summary["rollout"]
    if rollout:
        lines += ["", f"Rollout, {rollout['model']}, {rollout['dtype']}, batch {rollout['batch']}, prompts of "
                      f"{rollout['prompt_lens'][0]} tokens, {rollout['new_tokens']} new tokens, engine cache "
                      f"{rollout['engine_cache']} compile {rollout['engine_compile']} (new tokens/s, warm-up excluded):",
                  "", "| mode | contender | new tokens/s | ratio to the best generate |", "|---|---|---:|---:|"]
        for mode, r in rollout["results"].items():
            best = r["tokens_per_s"][r["best_generate"]]
            lines += [f"| {mode} | {name} | {rate:,.0f} | {rate / best:.2f}x |" for name, rate in r["tokens_per_s"].items()]
    profile = summary["profile"]
    if profile:
        families = ", ".join(f"{k} {v:,.0f} ms" for k, v in profile["kernel_ms_by_family"].items())
        bound = profile.get("weight_read_bound_step_ms")
        lines += ["", f"Engine profile (eager, batch {profile['batch']}, {profile['new_tokens']} new tokens): prefill "
                      f"{profile['prefill_s'] * 1000:,.1f} ms, decode step {profile['decode_step_ms']:.2f} ms"
                      + (f" (weight-read bound {bound:.2f} ms)" if bound else "")
                      + f"; kernel time by family: {families}"
                      + (f"; device busy {profile['device_busy_fraction']:.0%}, host gap "
                         f"{profile['host_gap_ms_per_step']:.2f} ms per step" if profile.get("device_busy_fraction") else "")]
    refit = summary["refit"]
    if refit:
        lines += ["", f"Refit from the hf backend ({refit['backend_dtype']}) into the {refit['engine_dtype']} engine: "
                      f"{refit['seconds_per_refit']:.3f} s for {refit['bytes_received'] / 1e9:.2f} GB "
                      f"({refit['gb_per_s']:.1f} GB/s); engine weights equal the backend's: {refit['weights_match_backend']}"]
    grpo = summary["grpo"]
    if grpo:
        lines += ["", f"GRPO step, {grpo['shape']}, {grpo['batch']} x {grpo['seq_len']} tokens, bf16 matmul peak "
                      f"measured {grpo.get('measured_bf16_matmul_tflops') or 0:,.0f} TFLOP/s:",
                  "", "| backend | s/step | tokens/s | MFU (measured peak) | peak memory GiB |", "|---|---:|---:|---:|---:|"]
        for name, r in throughput_rows(grpo.get("results", {})):
            mfu = r.get("mfu_vs_measured_peak")
            memory = r.get("peak_memory_gib")
            lines.append(f"| {name} | {r['seconds_per_step']:.3f} | {r['tokens_per_s']:,.0f} | "
                         f"{f'{mfu:.1%}' if mfu else '-'} | {f'{memory:.1f}' if memory else '-'} |")
    if summary["goals"]:
        lines += ["", "| goal | value | target | met |", "|---|---:|---:|---|"]
        for name, g in summary["goals"].items():
            lines.append(f"| {name} | {g['value']:,.3g} | {g['goal']:,} | {'yes' if g['met'] else 'NO'} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    if argv[:1] == ["--extract"] and len(argv) == 3:
        value = last_json_object(Path(argv[1]).read_text(errors="replace"))
        if value is None:
            print(f"gpu_summary: no JSON object in {argv[1]}", file=sys.stderr)
            return 1
        Path(argv[2]).write_text(json.dumps(value))
        return 0
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    out = Path(argv[0])
    summary = summarise(out)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    (out / "summary.md").write_text(markdown(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
