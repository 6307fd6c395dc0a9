"""Rollout throughput: the in-process engine against transformers ``generate``, same model,
same prompts, same lengths, measured in one run.

Both sample with the same settings and produce exactly ``--new-tokens`` tokens per row (the
engine with EOS stopping off, ``generate`` with ``min_new_tokens``), after one warm-up call each
on the exact shape. Timed calls alternate engine / generate so a noisy machine hurts both alike;
the median of ``--repeats`` is reported.

``--modes eos`` (or ``--stop-on-eos``) measures real rollouts instead: both stop at EOS,
throughput counts the tokens each row really produced (up to and including its EOS), and with a
dynamic engine cache a third contender, the engine with ``drop_finished=False``, shows what
dropping finished rows saves (it samples the very same tokens as the default engine). Use it
with ``--prompts medqa`` (chat prompts of real questions). ``--modes fixed,eos`` times both in
one process: the second mode reuses the first one's warm-up (compiled graphs, CUDA graphs).

``--generate-cache dynamic,static`` makes each of generate's caches a contender; ratios are
quoted against the faster one.

``--samples-per-prompt K`` repeats each distinct prompt K times (a GRPO group, the votes of a
pseudo-label) and adds the engine with ``share_prefill=False`` (every row prefilled on its own),
which shows what sharing one prefill per distinct prompt saves.

    python bench/rollout.py --model embedded:smollm2-135m-instruct --batch 8 --prompt-len 64 --new-tokens 64
    python bench/rollout.py --model random:qwen3-1.7b --batch 64 --prompt-len 256 --new-tokens 512 \\
        --cache static --compile --generate-cache dynamic,static --modes fixed,eos    # on a GPU
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from typing import Any

import torch

# Randomly initialised models of real shapes (no hub access needed), for GPU-scale runs.
RANDOM_SHAPES: dict[str, dict[str, Any]] = {
    # the dry run of bench/gpu_check.sh: the same code path at a size a CPU runs in seconds
    "random:qwen3-tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                              num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                              vocab_size=4096, max_position_embeddings=2048, tie_word_embeddings=True),
    "random:qwen3-1.7b": dict(hidden_size=2048, intermediate_size=6144, num_hidden_layers=28,
                              num_attention_heads=16, num_key_value_heads=8, head_dim=128,
                              vocab_size=151936, max_position_embeddings=40960, tie_word_embeddings=True),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="embedded:smollm2-135m-instruct",
                        help="a model reference (embedded:..., HF dir), 'tiny-llama', or one of %s" % list(RANDOM_SHAPES))
    parser.add_argument("--prompts", choices=["random", "medqa"], default="random",
                        help="random: random ordinary tokens, exactly --prompt-len each; medqa: chat prompts "
                             "of the first --batch MedQA test questions (natural lengths)")
    parser.add_argument("--modes", default="fixed",
                        help="comma-separated: fixed (every row exactly --new-tokens) and/or eos (stop at EOS, "
                             "count only real tokens); several modes share one warm-up")
    parser.add_argument("--stop-on-eos", action="store_true", help="the same as --modes eos")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--samples-per-prompt", type=int, default=1,
                        help="rows per distinct prompt (must divide --batch); >1 also times share_prefill=False")
    parser.add_argument("--prompt-len", type=int, default=64)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--device", default="auto", help="auto = cuda if available else cpu")
    parser.add_argument("--dtype", default="auto", help="auto = bfloat16 on cuda, float32 on cpu")
    parser.add_argument("--temperature", type=float, default=0.6)  # the paper's evaluation sampling
    parser.add_argument("--top-p", type=float, default=0.95)
    parser.add_argument("--top-k", type=int, default=20)
    parser.add_argument("--cache", choices=["dynamic", "static"], default="dynamic", help="engine KV cache")
    parser.add_argument("--compile", action="store_true", help="engine: compile the decode step (needs --cache static)")
    parser.add_argument("--generate-cache", default="dynamic",
                        help="comma-separated cache_implementation(s) of generate, each a contender: dynamic, "
                             "static (transformers compiles the forward on GPU)")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls of each, after one warm-up")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    return parser.parse_args(argv)


def load_model(reference: str, dtype: torch.dtype, device: torch.device) -> tuple[Any, Any]:
    from medssr_nemo.models import load_causal_lm, load_tokenizer, make_tiny_model

    if reference == "tiny-llama":
        model, tokenizer = make_tiny_model("llama", seed=0)
        return model.to(device=device, dtype=dtype), tokenizer
    if reference in RANDOM_SHAPES:
        from transformers import Qwen3Config, Qwen3ForCausalLM

        tokenizer = load_tokenizer("embedded:smollm2-135m-instruct")  # ids only; the vocab is the model's
        config = Qwen3Config(**RANDOM_SHAPES[reference], eos_token_id=tokenizer.eos_token_id,
                             pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id)
        torch.manual_seed(0)
        with torch.device(device):
            model = Qwen3ForCausalLM(config).to(dtype)
        return model.eval(), tokenizer
    return load_causal_lm(reference, dtype=dtype, device=device)


def timed(fn: Any, device: torch.device) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process). On a shared CPU box the CPU seconds are the
    steadier figure: other people's jobs stretch the wall time, not the work done."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start, start_cpu = time.perf_counter(), time.process_time()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start, time.process_time() - start_cpu


def make_prompts(args: argparse.Namespace, tokenizer: Any, vocab: int) -> list[list[int]]:
    """``--batch`` rows: ``batch / samples_per_prompt`` distinct prompts, each repeated in adjacent rows."""
    if args.samples_per_prompt < 1 or args.batch % args.samples_per_prompt:
        raise SystemExit(f"--samples-per-prompt={args.samples_per_prompt} must divide --batch={args.batch}")
    distinct = _distinct_prompts(args, tokenizer, vocab, args.batch // args.samples_per_prompt)
    return [prompt for prompt in distinct for _ in range(args.samples_per_prompt)]


def _distinct_prompts(args: argparse.Namespace, tokenizer: Any, vocab: int, count: int) -> list[list[int]]:
    if args.prompts == "medqa":
        from medssr_nemo.data.eval_files import paper_eval_path, read_paper_eval_file
        from medssr_nemo.prompts import encode_prompt

        records = read_paper_eval_file(paper_eval_path("medqa"))[:count]
        return [encode_prompt(record, tokenizer, "chat") for record in records]
    generator = torch.Generator().manual_seed(0)
    return torch.randint(100, min(vocab, len(tokenizer)), (count, args.prompt_len), generator=generator).tolist()


def left_pad(prompts: list[list[int]], pad_id: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(p) for p in prompts)
    ids = torch.tensor([[pad_id] * (width - len(p)) + p for p in prompts], device=device)
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=device)
    return ids, mask


def useful_tokens(rows: torch.Tensor, eos_ids: set[int]) -> int:
    """Tokens each row really produced: up to and including its first EOS."""
    total = 0
    for row in rows.tolist():
        stops = [i for i, token in enumerate(row) if token in eos_ids]
        total += stops[0] + 1 if stops else len(row)
    return total


def set_stop_on_eos(engine: Any, eos_ids: tuple[int, ...], stop: bool) -> None:
    """Fixed-length and stop-on-EOS timings share one engine (and its compiled graphs): only the
    EOS ids it stops on change between the two."""
    engine.eos_token_ids = eos_ids if stop else ()


def time_contenders(contenders: dict[str, Any], warm: set[str], repeats: int,
                    device: torch.device) -> tuple[dict[str, float], dict[str, list[float]], dict[str, list[float]]]:
    """Warm up every contender not yet run on this shape, then time them alternately."""
    warmup_s = {name: timed(run, device)[0] for name, run in contenders.items() if name not in warm}
    warm.update(contenders)
    seconds: dict[str, list[float]] = {name: [] for name in contenders}
    cpu_seconds: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(repeats):
        for name, run in contenders.items():
            wall, cpu = timed(run, device)
            seconds[name].append(wall)
            cpu_seconds[name].append(cpu)
    return warmup_s, seconds, cpu_seconds


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    from medssr_nemo.rollout.inprocess import InProcessEngine, _parse_dtype
    from medssr_nemo.rollout.interfaces import SamplingParams

    if args.threads:
        torch.set_num_threads(args.threads)
    modes = ["eos"] if args.stop_on_eos else [m.strip() for m in args.modes.split(",") if m.strip()]
    generate_caches = [c.strip() for c in args.generate_cache.split(",") if c.strip()]
    for value, allowed, flag in ((modes, ("fixed", "eos"), "--modes"), (generate_caches, ("dynamic", "static"), "--generate-cache")):
        if not value or set(value) - set(allowed):
            raise SystemExit(f"{flag} takes a comma-separated list of {allowed}, got {value}")
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    dtype = (torch.bfloat16 if device.type == "cuda" else torch.float32) if args.dtype == "auto" else _parse_dtype(args.dtype)
    model, tokenizer = load_model(args.model, dtype, device)
    vocab = model.get_output_embeddings().weight.shape[0]
    prompts = make_prompts(args, tokenizer, vocab)
    seeds = list(range(len(prompts)))
    sampling = SamplingParams(temperature=args.temperature, top_p=args.top_p, top_k=args.top_k,
                              max_new_tokens=args.new_tokens)
    engine_kwargs: dict[str, Any] = dict(max_batch_size=len(prompts), cache=args.cache, compile=args.compile)
    engines = {"engine": InProcessEngine(model, tokenizer, **engine_kwargs)}
    if "eos" in modes and args.cache == "dynamic":  # a static cache never drops rows anyway
        engines["engine_keep_finished"] = InProcessEngine(model, tokenizer, **engine_kwargs, drop_finished=False)
    if args.samples_per_prompt > 1:
        engines["engine_separate_prefill"] = InProcessEngine(model, tokenizer, **engine_kwargs, share_prefill=False)
    eos_ids = tuple(engines["engine"].eos_token_ids)
    input_ids, attention_mask = left_pad(prompts, tokenizer.pad_token_id, device)
    produced: dict[str, int] = {}

    def engine_runner(name: str, contender: Any) -> Any:
        def run() -> None:
            completions = contender.generate(prompts, sampling, seeds)
            produced[name] = sum(len(c.token_ids) for c in completions)
        return run

    def generate_runner(name: str, cache: str, stop_on_eos: bool) -> Any:
        kwargs: dict[str, Any] = dict(
            do_sample=args.temperature > 0, temperature=args.temperature or None, top_p=args.top_p,
            top_k=args.top_k, max_new_tokens=args.new_tokens, pad_token_id=tokenizer.pad_token_id,
        )
        if not stop_on_eos:
            kwargs["min_new_tokens"] = args.new_tokens
        if cache == "static":
            kwargs["cache_implementation"] = "static"  # transformers compiles the forward on GPU

        def run() -> None:
            with torch.inference_mode():
                out = model.generate(input_ids, attention_mask=attention_mask, **kwargs)
            produced[name] = useful_tokens(out[:, input_ids.shape[1]:], set(eos_ids) if stop_on_eos else set())
        return run

    warm: set[str] = set()
    per_mode: dict[str, Any] = {}
    for mode in modes:
        stop_on_eos = mode == "eos"
        contenders: dict[str, Any] = {}
        for name, engine in engines.items():
            if name == "engine_keep_finished" and not stop_on_eos:
                continue
            set_stop_on_eos(engine, eos_ids, stop_on_eos)
            contenders[name] = engine_runner(name, engine)
        for cache in generate_caches:
            contenders[f"generate_{cache}"] = generate_runner(f"generate_{cache}", cache, stop_on_eos)
        produced.clear()
        warmup_s, seconds, cpu_seconds = time_contenders(contenders, warm, args.repeats, device)
        rates = {name: produced[name] / statistics.median(s) for name, s in seconds.items()}
        cpu_rates = {name: produced[name] / statistics.median(s) for name, s in cpu_seconds.items()}
        best_generate = max((n for n in rates if n.startswith("generate_")), key=rates.__getitem__)
        per_mode[mode] = {
            "warmup_s": warmup_s, "seconds": seconds, "cpu_seconds": cpu_seconds, "tokens_produced": dict(produced),
            "tokens_per_s": rates, "tokens_per_cpu_s": cpu_rates, "best_generate": best_generate,
            "ratio_to_best_generate": {n: rates[n] / rates[best_generate] for n in rates if not n.startswith("generate_")},
            "speedup": rates["engine"] / rates[best_generate],
            "speedup_cpu_time": cpu_rates["engine"] / cpu_rates[best_generate],
        }
    result = {
        "model": args.model, "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "dtype": str(dtype).removeprefix("torch."), "batch": len(prompts), "prompts": args.prompts,
        "samples_per_prompt": args.samples_per_prompt,
        "prompt_lens": sorted({len(p) for p in prompts}), "new_tokens": args.new_tokens,
        "modes": modes, "engine_cache": args.cache, "engine_compile": args.compile,
        "generate_caches": generate_caches, "threads": torch.get_num_threads(),
        "sampling": {"temperature": args.temperature, "top_p": args.top_p, "top_k": args.top_k},
        "torch": torch.__version__, "transformers": __import__("transformers").__version__,
        "results": per_mode,
    }
    if args.json:
        print(json.dumps(result))
        return result
    lens = result["prompt_lens"]
    print(f"{args.model} on {result['device']} ({result['dtype']}, {result['threads']} threads): batch {len(prompts)}, "
          f"{args.prompts} prompts of {lens[0]}..{lens[-1]} tokens, {args.new_tokens} new tokens, "
          f"engine cache={args.cache} compile={args.compile}")
    for mode, r in per_mode.items():
        print(f" {'stop on EOS' if mode == 'eos' else 'fixed length'}:")
        for name, rate in r["tokens_per_s"].items():
            calls = ", ".join(f"{s:.2f}s" for s in r["seconds"][name])
            print(f"  {name:24s}: {rate:9.1f} new tokens/s  ({r['tokens_produced'][name]} tokens; calls {calls}; "
                  f"{r['tokens_per_cpu_s'][name]:.1f} tokens per CPU-second)")
        print(f"  ratio engine / {r['best_generate']} (the faster generate): {r['speedup']:.2f}x "
              f"(by CPU time: {r['speedup_cpu_time']:.2f}x)")
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
