"""One GRPO training step: the ``megatron`` policy backend with sequence packing on and off
(and the ``hf`` backend), same run.

All train the same randomly initialised model (default: the Qwen3-1.7B shape) on the same batch
with the same GRPO loss; reported per contender: seconds per step, tokens per second (the
batch's real tokens, padding excluded; forward + backward + optimiser), model FLOPs utilisation
against both the bf16 matmul peak measured in this run and a nominal peak (``--peak-tflops``),
and the step's peak GPU memory. ``--lengths grpo`` (default) gives rows GRPO-like lengths (a
quarter of ``--seq-len`` of prompt, responses between 1/8 and 3/4 of it), where packing pays;
``--lengths full`` makes every row full length.

    python bench/megatron_step.py                                  # GPU: Qwen3-1.7B shape, bf16
    python bench/megatron_step.py --shape tiny --batch 4 --seq-len 64 --repeats 1 --pack-tokens 128  # CPU smoke

Precision: the megatron backend keeps bf16 weights with fp32 master weights and gradients in its
distributed optimiser (policy.bf16); the hf backend keeps fp32 weights under bf16 autocast. Both
use Adam(W) and the same loss. They run one after the other (not both in memory), each warmed up
on the exact shape first; compare figures from the same run and card only (see bench/README.md).

FLOPs per token (PaLM appendix B, no causal discount): 6 N + 12 L H T, with N the parameters
touched by matmuls (all but the norms; the tied embedding counted once, as the output layer),
L layers, H = heads x head_dim, T the mean real sequence length of the batch.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import statistics
import sys
import time
from typing import Any

import torch

SHAPES: dict[str, dict[str, Any]] = {
    "qwen3-1.7b": dict(hidden_size=2048, intermediate_size=6144, num_hidden_layers=28, num_attention_heads=16,
                       num_key_value_heads=8, head_dim=128, vocab_size=151936, max_position_embeddings=40960,
                       tie_word_embeddings=True, rope_theta=1000000.0),
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, head_dim=16, vocab_size=4096, max_position_embeddings=2048,
                 tie_word_embeddings=True),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", choices=sorted(SHAPES), default="qwen3-1.7b")
    parser.add_argument("--batch", type=int, default=8, help="sequences per step")
    parser.add_argument("--seq-len", type=int, default=1024, help="tokens per sequence (prompt + response)")
    parser.add_argument("--micro-batch", type=int, default=0, help="sequences per micro-batch; 0 = the whole batch")
    parser.add_argument("--repeats", type=int, default=3, help="timed steps per backend (after one warm-up step)")
    parser.add_argument("--backends", default="megatron,megatron_packed",
                        help="comma-separated from megatron, megatron_packed, hf; measured in this order")
    parser.add_argument("--pack-tokens", type=int, default=16384, help="token budget of a packed micro-batch")
    parser.add_argument("--lengths", choices=("grpo", "full"), default="grpo", help="row lengths (see above)")
    parser.add_argument("--recompute", action="store_true", help="full activation recompute (megatron)")
    parser.add_argument("--peak-tflops", type=float, default=989.0,
                        help="nominal dense bf16 peak of the card for the second MFU figure (H100 SXM: 989)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: leave as is)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a summary")
    return parser.parse_args(argv)


def make_model(shape: str, device: torch.device) -> Any:
    from transformers import Qwen3Config, Qwen3ForCausalLM

    config = Qwen3Config(**SHAPES[shape], bos_token_id=1, eos_token_id=2, pad_token_id=2)
    torch.manual_seed(0)
    with torch.device(device):
        model = Qwen3ForCausalLM(config)
    return model.float().eval()


class _Ids:
    """The minimum of a tokenizer the backends touch in a training step."""

    pad_token_id = 2
    eos_token_id = 2

    def save_pretrained(self, *_: Any, **__: Any) -> None:
        pass


def make_batch(batch: int, seq_len: int, vocab: int, lengths: str = "full") -> dict[str, torch.Tensor]:
    """Random tokens, right-padded. ``full``: every row ``seq_len`` long, the second half the
    response. ``grpo``: a prompt of seq_len / 4 and a response of a random length in
    [seq_len / 8, 3 seq_len / 4]; one row is full length, so the padded width is seq_len."""
    gen = torch.Generator().manual_seed(1)
    input_ids = torch.randint(10, vocab, (batch, seq_len), generator=gen)
    attention_mask = torch.ones_like(input_ids)
    response_mask = torch.zeros((batch, seq_len))
    if lengths == "full":
        response_mask[:, seq_len // 2:] = 1
    else:
        prompt = seq_len // 4
        for row in range(batch):
            length = seq_len if row == 0 else prompt + int(torch.randint(seq_len // 8, 3 * seq_len // 4 + 1, (1,),
                                                                         generator=gen))
            attention_mask[row, length:] = 0
            input_ids[row, length:] = 2
            response_mask[row, prompt:length] = 1
    advantages = torch.randn(batch, generator=gen)
    return {"input_ids": input_ids, "attention_mask": attention_mask, "response_mask": response_mask,
            "advantages": advantages}


def flops_per_token(model: Any, seq_len: int) -> float:
    config = model.config
    matmul_params = sum(p.numel() for n, p in model.named_parameters() if p.dim() == 2)
    attention = 12 * config.num_hidden_layers * config.num_attention_heads * config.head_dim * seq_len
    return 6.0 * matmul_params + attention


def measured_matmul_tflops(device: torch.device) -> float | None:
    """bf16 dense matmul throughput of this card (the ceiling MFU is quoted against)."""
    if device.type != "cuda":
        return None
    n = 8192
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    start, iterations = time.perf_counter(), 20
    for _ in range(iterations):
        a @ b
    torch.cuda.synchronize()
    return 2 * n ** 3 * iterations / (time.perf_counter() - start) / 1e12


def build_backend(name: str, shape: str, device: torch.device, micro_batch: int, pack_tokens: int = 0,
                  recompute: bool = False) -> Any:
    from medssr_nemo.config.schema.policy import PolicyConfig

    options = {"pack_tokens": pack_tokens} if name == "megatron_packed" else {}
    cfg = PolicyConfig(lr=1e-6, micro_batch_size=micro_batch, bf16=True, grad_clip=1.0,
                       gradient_checkpointing=recompute and name != "hf", options=options)
    model = make_model(shape, device)
    if name in ("megatron", "megatron_packed"):
        from medssr_nemo.policy.megatron.backend import MegatronPolicyBackend

        backend = MegatronPolicyBackend(cfg, model=model, tokenizer=_Ids(), reference=False)
        del model  # its weights now live in the megatron model
    elif name == "hf":
        from medssr_nemo.policy.hf import HFPolicyBackend

        backend = HFPolicyBackend(cfg, model=model, tokenizer=_Ids(), reference=False)
    else:
        raise SystemExit(f"unknown backend {name!r}; choose from megatron, megatron_packed, hf")
    return backend


def time_backend(name: str, args: argparse.Namespace, device: torch.device, batch: dict[str, torch.Tensor]) -> dict[str, Any]:
    from medssr_nemo.config.schema.grpo import GRPOConfig
    from medssr_nemo.grpo.losses import make_grpo_loss

    micro = args.micro_batch or args.batch
    backend = build_backend(name, args.shape, device, micro, args.pack_tokens, args.recompute)
    loss_fn = make_grpo_loss(GRPOConfig(kl_coef=0.0), log_entropy=False)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    backend.train_step(batch, loss_fn)  # warm-up on the exact shape
    seconds, losses = [], []
    for _ in range(args.repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        metrics = backend.train_step(batch, loss_fn)
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds.append(time.perf_counter() - start)
        losses.append(metrics["loss"])
    peak_gib = torch.cuda.max_memory_allocated() / 2 ** 30 if device.type == "cuda" else None
    micro_batches = len(getattr(backend, "last_micro_batch_tokens", [])) or None
    del backend
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return {"seconds_per_step": statistics.median(seconds), "all_seconds": seconds, "losses": losses,
            "peak_memory_gib": peak_gib, "micro_batches": micro_batches}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    from medssr_nemo.policy.megatron.parallel import init_process_group

    init_process_group()  # both backends run in this one-rank world
    reference_model = make_model(args.shape, torch.device("meta"))
    batch = make_batch(args.batch, args.seq_len, SHAPES[args.shape]["vocab_size"], args.lengths)
    tokens = int(batch["attention_mask"].sum())  # real tokens: padding is not work done
    per_token = flops_per_token(reference_model, round(tokens / args.batch))
    peak = measured_matmul_tflops(device)
    results: dict[str, Any] = {}
    for name in [b.strip() for b in args.backends.split(",") if b.strip()]:
        timing = time_backend(name, args, device, batch)
        tokens_per_s = tokens / timing["seconds_per_step"]
        achieved = tokens_per_s * per_token / 1e12
        results[name] = {**timing, "tokens_per_s": tokens_per_s, "model_tflops": achieved,
                         "mfu_vs_measured_peak": achieved / peak if peak else None,
                         "mfu_vs_nominal_peak": achieved / args.peak_tflops if device.type == "cuda" else None}
    import megatron.core
    import transformers

    report = {
        "shape": args.shape, "batch": args.batch, "seq_len": args.seq_len, "micro_batch": args.micro_batch or args.batch,
        "lengths": args.lengths, "pack_tokens": args.pack_tokens, "recompute": args.recompute,
        "tokens_per_step": tokens, "flops_per_token": per_token,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "measured_bf16_matmul_tflops": peak, "nominal_peak_tflops": args.peak_tflops,
        "torch": torch.__version__, "transformers": transformers.__version__, "megatron_core": megatron.core.__version__,
        "results": results,
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"GRPO step, {args.shape}, {args.batch} rows of up to {args.seq_len} tokens ({tokens:,} real), "
              f"on {report['device']} "
              f"(bf16 matmul peak measured: {peak and round(peak)} TFLOP/s)")
        for name, r in results.items():
            mfu = f", MFU {r['mfu_vs_measured_peak']:.1%} of measured / {r['mfu_vs_nominal_peak']:.1%} of nominal" \
                if r["mfu_vs_measured_peak"] else ""
            memory = f", peak memory {r['peak_memory_gib']:.1f} GiB" if r["peak_memory_gib"] else ""
            print(f"  {name:15s} {r['seconds_per_step']:.3f} s/step, {r['tokens_per_s']:,.0f} tokens/s, "
                  f"{r['model_tflops']:.1f} model TFLOP/s{mfu}{memory}")
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
