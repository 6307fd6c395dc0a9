"""Where the in-process engine's time goes: prefill, decode step, sampling, and the host-side
(Python) gap between GPU kernels.

Runs the engine eagerly (dynamic cache, no compile, so every op is visible to the profiler) on
random prompts of a random model: a prefill-only call (one new token) and a full call, timed,
give the prefill time and the time per decode step; one full call under ``torch.profiler`` gives
the kernel time per op family and how busy the device was. The weight-read bound of a decode
step (parameter bytes / measured device copy bandwidth) says how far a step is from the memory
roofline.

    python bench/profile_engine.py                                     # GPU: Qwen3-1.7B shape
    python bench/profile_engine.py --model random:qwen3-tiny --batch 2 --prompt-len 8 --new-tokens 4
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from typing import Any

import torch

from rollout import RANDOM_SHAPES, load_model  # bench scripts run as scripts: bench/ is on sys.path

# aten op name fragments by what they do in a decode step
OP_FAMILIES: dict[str, tuple[str, ...]] = {
    "matmul": ("mm", "matmul", "linear", "addmm", "gemm"),
    "attention": ("attention", "sdpa", "scaled_dot_product", "flash"),
    "sampling": ("topk", "sort", "multinomial", "cumsum", "exponential", "argmax", "gather", "scatter"),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="random:qwen3-1.7b", choices=sorted(RANDOM_SHAPES))
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--prompt-len", type=int, default=256)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    return parser.parse_args(argv)


def wall(fn: Any, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def copy_bandwidth_gb_s(device: torch.device) -> float | None:
    """Bytes read + written per second by a large device-to-device copy."""
    if device.type != "cuda":
        return None
    source = torch.empty(1 << 30, dtype=torch.uint8, device=device)
    target = torch.empty_like(source)
    target.copy_(source)
    seconds = min(wall(lambda: target.copy_(source), device) for _ in range(5))
    return 2 * source.numel() / seconds / 1e9


def kernel_ms_by_family(profile: Any) -> tuple[dict[str, float], float]:
    """Device (or, on CPU, self CPU) milliseconds per op family, and their total."""
    families = {name: 0.0 for name in [*OP_FAMILIES, "other"]}
    total = 0.0
    for event in profile.key_averages():
        ms = (getattr(event, "self_device_time_total", 0) or getattr(event, "self_cuda_time_total", 0)
              or (event.self_cpu_time_total if not torch.cuda.is_available() else 0)) / 1000
        if ms <= 0:
            continue
        total += ms
        name = event.key.lower()
        family = next((f for f, parts in OP_FAMILIES.items() if any(p in name for p in parts)), "other")
        families[family] += ms
    return families, total


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    from medssr_nemo.rollout.inprocess import InProcessEngine
    from medssr_nemo.rollout.interfaces import SamplingParams

    device = torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu")
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    model, tokenizer = load_model(args.model, dtype, device)
    engine = InProcessEngine(model, tokenizer, max_batch_size=args.batch, eos_token_ids=())
    generator = torch.Generator().manual_seed(0)
    vocab = min(model.config.vocab_size, len(tokenizer))
    prompts = torch.randint(100, vocab, (args.batch, args.prompt_len), generator=generator).tolist()
    seeds = list(range(args.batch))

    def call(new_tokens: int) -> Any:
        sampling = SamplingParams(temperature=0.6, top_p=0.95, top_k=20, max_new_tokens=new_tokens)
        return lambda: engine.generate(prompts, sampling, seeds)

    call(args.new_tokens)()  # warm-up
    prefill_s = statistics.median(wall(call(1), device) for _ in range(args.repeats))
    full_s = statistics.median(wall(call(args.new_tokens), device) for _ in range(args.repeats))
    decode_step_ms = (full_s - prefill_s) / max(args.new_tokens - 1, 1) * 1000
    activities = [torch.profiler.ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.profiler.profile(activities=activities) as profile:
        profiled_s = wall(call(args.new_tokens), device)
    families, kernel_ms = kernel_ms_by_family(profile)
    sort_key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    parameter_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    bandwidth = copy_bandwidth_gb_s(device)
    result = {
        "model": args.model, "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "dtype": str(dtype).removeprefix("torch."), "batch": args.batch, "prompt_len": args.prompt_len,
        "new_tokens": args.new_tokens, "engine": "eager, dynamic cache",
        "prefill_s": prefill_s, "full_call_s": full_s, "decode_step_ms": decode_step_ms,
        "profiled_call_s": profiled_s, "kernel_ms_by_family": families, "kernel_ms_total": kernel_ms,
        "device_busy_fraction": kernel_ms / 1000 / profiled_s if device.type == "cuda" else None,
        "host_gap_ms_per_step": (profiled_s * 1000 - kernel_ms) / args.new_tokens if device.type == "cuda" else None,
        "parameter_bytes": parameter_bytes, "copy_bandwidth_gb_s": bandwidth,
        "weight_read_bound_step_ms": parameter_bytes / (bandwidth / 2 * 1e9) * 1000 if bandwidth else None,
        "top_ops": profile.key_averages().table(sort_by=sort_key, row_limit=15),
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{args.model} on {result['device']}: prefill {prefill_s * 1000:.1f} ms, decode step {decode_step_ms:.2f} ms "
              f"(weight-read bound {result['weight_read_bound_step_ms'] or float('nan'):.2f} ms); kernel ms by family "
              + ", ".join(f"{k} {v:.1f}" for k, v in families.items()))
        print(result["top_ops"])
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
