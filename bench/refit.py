"""Refit time: the in-process engine reloaded from the ``hf`` policy backend between two
generations, the step a GRPO trainer takes after every update.

The hf backend keeps fp32 weights (bf16 autocast on GPU); the engine samples from its own copy
in ``--engine-dtype`` (bf16 on GPU), so every refit converts and copies every tensor, as in a
real run with ``rollout.options.dtype=bfloat16``. Timed: ``engine.update_weights(
backend.export_hf_weights())`` after a warm-up generation; reported: seconds per refit, the
bytes the engine received and the resulting GB/s, and a check that the engine holds exactly the
backend's weights (cast to its dtype) afterwards and that the next generation carries the new
weight version.

    python bench/refit.py                                          # GPU: Qwen3-1.7B shape
    python bench/refit.py --model random:qwen3-tiny --repeats 1    # CPU dry run
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

from rollout import RANDOM_SHAPES, load_model  # bench scripts run as scripts: bench/ is on sys.path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="random:qwen3-1.7b", choices=sorted(RANDOM_SHAPES))
    parser.add_argument("--engine-dtype", default="auto", help="auto = bfloat16 on cuda, float32 on cpu")
    parser.add_argument("--batch", type=int, default=8, help="rows of the generations around the refit")
    parser.add_argument("--prompt-len", type=int, default=64)
    parser.add_argument("--new-tokens", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3, help="timed refits")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    return parser.parse_args(argv)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def engine_matches_backend(engine: Any, backend: Any) -> bool:
    """Every engine tensor equals the backend's tensor of the same HF name, cast to the engine's
    dtype (the refit's contract; a counter of copied tensors would not show a wrong copy)."""
    targets = engine.model.state_dict()
    for name, source in backend.export_hf_weights():
        target = targets[name]
        if not torch.equal(target, source.to(device=target.device, dtype=target.dtype)):
            return False
    return True


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    from medssr_nemo.config.schema.policy import PolicyConfig
    from medssr_nemo.policy.hf import HFPolicyBackend
    from medssr_nemo.rollout.inprocess import InProcessEngine, _parse_dtype
    from medssr_nemo.rollout.interfaces import SamplingParams

    device = torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu")
    engine_dtype = (torch.bfloat16 if device.type == "cuda" else torch.float32) if args.engine_dtype == "auto" \
        else _parse_dtype(args.engine_dtype)
    model, tokenizer = load_model(args.model, torch.float32, device)
    backend = HFPolicyBackend(PolicyConfig(lr=1e-6, bf16=True, device=device.type), model=model,
                              tokenizer=tokenizer, reference=False)
    engine = InProcessEngine(backend.model, tokenizer, dtype=engine_dtype, max_batch_size=args.batch,
                             eos_token_ids=())
    generator = torch.Generator().manual_seed(0)
    vocab = min(model.config.vocab_size, len(tokenizer))
    prompts = torch.randint(100, vocab, (args.batch, args.prompt_len), generator=generator).tolist()
    sampling = SamplingParams(temperature=1.0, max_new_tokens=args.new_tokens)
    seeds = list(range(args.batch))
    engine.generate(prompts, sampling, seeds)  # warm-up on the exact shape
    with torch.no_grad():  # a stand-in for an optimiser step: the refit must carry these changes
        for parameter in backend.model.parameters():
            parameter.add_(1e-3)
    bytes_received = sum(t.numel() * t.element_size() for _, t in backend.export_hf_weights())
    seconds = []
    for _ in range(args.repeats):
        synchronize(device)
        start = time.perf_counter()
        version = engine.update_weights(backend.export_hf_weights())
        synchronize(device)
        seconds.append(time.perf_counter() - start)
    after = engine.generate(prompts, sampling, seeds)
    result = {
        "model": args.model, "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "backend_dtype": "float32", "engine_dtype": str(engine_dtype).removeprefix("torch."),
        "engine_is_separate_copy": engine.model is not backend.model,
        "tensors": engine.last_update["tensors"], "tensors_copied": engine.last_update["copied"],
        "bytes_received": bytes_received, "seconds": seconds, "seconds_per_refit": statistics.median(seconds),
        "gb_per_s": bytes_received / statistics.median(seconds) / 1e9,
        "weights_match_backend": engine_matches_backend(engine, backend),
        "next_generation_version": after[0].weight_version, "expected_version": version,
        "torch": torch.__version__, "transformers": __import__("transformers").__version__,
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(f"refit {args.model} ({result['tensors']} tensors, {bytes_received / 1e9:.2f} GB fp32) into a "
              f"{result['engine_dtype']} engine on {result['device']}: {result['seconds_per_refit']:.3f} s "
              f"({result['gb_per_s']:.1f} GB/s); weights match: {result['weights_match_backend']}; "
              f"next generation at version {result['next_generation_version']} (expected {version})")
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
