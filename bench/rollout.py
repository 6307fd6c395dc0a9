"""Rollout throughput: the in-process engine against transformers ``generate``, same model,
same prompts, same lengths, measured in one run.

Both sample with the same settings and produce exactly ``--new-tokens`` tokens per row (the
engine with EOS stopping off, ``generate`` with ``min_new_tokens``), after one warm-up call each
on the exact shape. Timed calls alternate engine / generate so a noisy machine hurts both alike;
the median of ``--repeats`` is reported.

``--stop-on-eos`` measures real rollouts instead: both stop at EOS, throughput counts the tokens
each row really produced (up to and including its EOS), and a third contender, the engine with
``drop_finished=False``, shows what dropping finished rows saves (it samples the very same
tokens as the default engine). Use it with ``--prompts medqa`` (chat prompts of real questions).

``--samples-per-prompt K`` repeats each distinct prompt K times (a GRPO group, the votes of a
pseudo-label) and adds the engine with ``share_prefill=False`` (every row prefilled on its own),
which shows what sharing one prefill per distinct prompt saves.

    python bench/rollout.py --model embedded:smollm2-135m-instruct --batch 8 --prompt-len 64 --new-tokens 64
    python bench/rollout.py --model random:qwen3-1.7b --batch 64 --prompt-len 256 --new-tokens 512 \\
        --cache static --compile          # on a GPU
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
    parser.add_argument("--stop-on-eos", action="store_true", help="stop at EOS and count only real tokens")
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
    parser.add_argument("--generate-cache", choices=["dynamic", "static"], default="dynamic",
                        help="generate's cache_implementation (static auto-compiles on GPU)")
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


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    from medssr_nemo.rollout.inprocess import InProcessEngine, _parse_dtype
    from medssr_nemo.rollout.interfaces import SamplingParams

    if args.threads:
        torch.set_num_threads(args.threads)
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
    if not args.stop_on_eos:
        engine_kwargs["eos_token_ids"] = ()
    engine = InProcessEngine(model, tokenizer, **engine_kwargs)
    eos_ids = set(engine.eos_token_ids) if args.stop_on_eos else set()
    input_ids, attention_mask = left_pad(prompts, tokenizer.pad_token_id, device)
    generate_kwargs: dict[str, Any] = dict(
        do_sample=args.temperature > 0, temperature=args.temperature or None, top_p=args.top_p, top_k=args.top_k,
        max_new_tokens=args.new_tokens, pad_token_id=tokenizer.pad_token_id,
    )
    if not args.stop_on_eos:
        generate_kwargs["min_new_tokens"] = args.new_tokens
    if args.generate_cache == "static":
        generate_kwargs["cache_implementation"] = "static"

    produced: dict[str, int] = {}

    def engine_runner(name: str, contender: Any) -> Any:
        def run() -> None:
            completions = contender.generate(prompts, sampling, seeds)
            produced[name] = sum(len(c.token_ids) for c in completions)
        return run

    def run_generate() -> None:
        with torch.inference_mode():
            out = model.generate(input_ids, attention_mask=attention_mask, **generate_kwargs)
        produced["generate"] = useful_tokens(out[:, input_ids.shape[1]:], eos_ids)

    contenders = {"engine": engine_runner("engine", engine), "generate": run_generate}
    if args.stop_on_eos:
        keep_rows = InProcessEngine(model, tokenizer, **engine_kwargs, drop_finished=False)
        contenders["engine_keep_finished"] = engine_runner("engine_keep_finished", keep_rows)
    if args.samples_per_prompt > 1:
        separate = InProcessEngine(model, tokenizer, **engine_kwargs, share_prefill=False)
        contenders["engine_separate_prefill"] = engine_runner("engine_separate_prefill", separate)
    warmup_s = {name: timed(run, device)[0] for name, run in contenders.items()}
    seconds: dict[str, list[float]] = {name: [] for name in contenders}
    cpu_seconds: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(args.repeats):
        for name, run in contenders.items():
            wall, cpu = timed(run, device)
            seconds[name].append(wall)
            cpu_seconds[name].append(cpu)
    rates = {name: produced[name] / statistics.median(s) for name, s in seconds.items()}
    cpu_rates = {name: produced[name] / statistics.median(s) for name, s in cpu_seconds.items()}
    result = {
        "model": args.model, "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "dtype": str(dtype).removeprefix("torch."), "batch": len(prompts), "prompts": args.prompts,
        "samples_per_prompt": args.samples_per_prompt,
        "prompt_lens": sorted({len(p) for p in prompts}), "new_tokens": args.new_tokens,
        "stop_on_eos": args.stop_on_eos, "engine_cache": args.cache, "engine_compile": args.compile,
        "generate_cache": args.generate_cache, "threads": torch.get_num_threads(),
        "sampling": {"temperature": args.temperature, "top_p": args.top_p, "top_k": args.top_k},
        "torch": torch.__version__, "transformers": __import__("transformers").__version__,
        "warmup_s": warmup_s, "seconds": seconds, "cpu_seconds": cpu_seconds, "tokens_produced": produced,
        "tokens_per_s": rates, "tokens_per_cpu_s": cpu_rates,
        "speedup": rates["engine"] / rates["generate"],
        "speedup_cpu_time": cpu_rates["engine"] / cpu_rates["generate"],
    }
    if args.json:
        print(json.dumps(result))
        return result
    lens = result["prompt_lens"]
    print(f"{args.model} on {result['device']} ({result['dtype']}, {result['threads']} threads): batch {len(prompts)}, "
          f"{args.prompts} prompts of {lens[0]}..{lens[-1]} tokens, {args.new_tokens} new tokens"
          f"{' (stop on EOS)' if args.stop_on_eos else ''}, engine cache={args.cache} compile={args.compile}, "
          f"generate cache={args.generate_cache}")
    for name in contenders:
        calls = ", ".join(f"{s:.2f}s" for s in seconds[name])
        print(f"  {name:22s}: {rates[name]:9.1f} new tokens/s  ({produced[name]} tokens; calls {calls}; "
              f"{cpu_rates[name]:.1f} tokens per CPU-second)")
    print(f"  ratio engine / generate: {result['speedup']:.2f}x (by CPU time: {result['speedup_cpu_time']:.2f}x)")
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
