"""Per-GPU memory plan for a model size, from its config (``python -m medssr_nemo.launch.memory``).

Architecture numbers are those of each model's Hugging Face ``config.json`` (hidden_size,
num_hidden_layers, num_attention_heads, num_key_value_heads, head_dim, intermediate_size,
vocab_size, tie_word_embeddings), keyed by the hub id in ``conf/model/*.yaml``. Parameters are
counted from them (attention q/k/v/o, gated MLP, RMSNorms, Qwen3's q/k norms, embeddings and an
untied LM head); Llama-3.1-8B comes out at its published 8,030,261,248.

Bytes per parameter, Megatron-style mixed precision with the distributed optimizer:
bf16 weights (2) sharded by TP x PP; fp32 gradient buffer (4) sharded by TP x PP; fp32 master
weights + Adam m and v (12) sharded by TP x PP x DP. The frozen reference policy (KL term) is a
second bf16 copy sharded by TP x PP; the rollout engine holds a third, sharded by its own TP.
KV cache for one rollout batch: 2 (K and V) x layers x kv_heads x head_dim x 2 bytes per token,
for every sequence of the batch (prompts_per_step x group_size x (prompt + new tokens)), spread
over the rollout engine's TP GPUs (the engine is ONE replica, see rollout/trtllm/engine.py).
When that exceeds the headroom an 80 GB H100 (74.5 GiB) leaves after the static state, the engine's
in-flight batching runs the batch in about ``waves`` rounds. Activations are left out: they
depend on micro-batch size and recomputation.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import Sequence

from medssr_nemo.config import load_config
from medssr_nemo.config.schema import MedSSRConfig

GIB = 2**30
H100_BYTES = 80 * 10**9   # what an H100-80GB reports (74.5 GiB)


@dataclasses.dataclass(frozen=True)
class Architecture:
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int
    tied: bool
    qk_norm: bool   # Qwen3 normalises q and k per head

    def parameters(self) -> int:
        h, hd = self.hidden, self.head_dim
        attention = h * self.heads * hd + 2 * h * self.kv_heads * hd + self.heads * hd * h
        mlp = 3 * h * self.intermediate
        norms = 2 * h + (2 * hd if self.qk_norm else 0)
        embeddings = self.vocab * h * (1 if self.tied else 2)
        return self.layers * (attention + mlp + norms) + embeddings + h

    def kv_bytes_per_token(self, bytes_per_value: int = 2) -> int:
        return 2 * self.layers * self.kv_heads * self.head_dim * bytes_per_value


# From each model's config.json on the Hugging Face Hub.
ARCHITECTURES: dict[str, Architecture] = {
    "Qwen/Qwen3-1.7B": Architecture(2048, 28, 16, 8, 128, 6144, 151936, True, True),
    "Qwen/Qwen3-4B": Architecture(2560, 36, 32, 8, 128, 9728, 151936, True, True),
    "Qwen/Qwen3-8B": Architecture(4096, 36, 32, 8, 128, 12288, 151936, False, True),
    "Qwen/Qwen3-14B": Architecture(5120, 40, 40, 8, 128, 17408, 151936, False, True),
    "Qwen/Qwen3-32B": Architecture(5120, 64, 64, 8, 128, 25600, 151936, False, True),
    # the base models the paper trains: the same shapes as their post-trained releases
    "Qwen/Qwen3-1.7B-Base": Architecture(2048, 28, 16, 8, 128, 6144, 151936, True, True),
    "Qwen/Qwen3-4B-Base": Architecture(2560, 36, 32, 8, 128, 9728, 151936, True, True),
    "Qwen/Qwen3-8B-Base": Architecture(4096, 36, 32, 8, 128, 12288, 151936, False, True),
    "Qwen/Qwen3-14B-Base": Architecture(5120, 40, 40, 8, 128, 17408, 151936, False, True),
    "meta-llama/Llama-3.1-8B-Instruct": Architecture(4096, 32, 32, 8, 128, 14336, 128256, False, False),
}

SIZES = ("qwen3_1_7b", "qwen3_4b", "qwen3_8b", "llama3_1_8b", "qwen3_14b", "qwen3_32b")


@dataclasses.dataclass(frozen=True)
class MemoryPlan:
    model: str
    parameters: int
    tp: int
    pp: int
    dp: int
    rollout_tp: int
    weights: float          # bytes per GPU
    grads: float
    optimizer: float
    reference: float
    rollout_weights: float
    kv_cache: float
    rollout_tokens: int

    @property
    def static(self) -> float:
        """Bytes per GPU that stay resident when engine and trainer share the GPU (without KV)."""
        return self.weights + self.grads + self.optimizer + self.reference + self.rollout_weights

    @property
    def waves(self) -> int:
        headroom = H100_BYTES - self.static
        return -(-int(self.kv_cache) // int(headroom)) if headroom > 0 else -1


def plan(cfg: MedSSRConfig, rollout_tp: int | None = None) -> MemoryPlan:
    arch = ARCHITECTURES.get(cfg.model.path)
    if arch is None:
        raise KeyError(f"no architecture numbers for model.path={cfg.model.path!r}; known: {sorted(ARCHITECTURES)}")
    tp, pp = cfg.model.tensor_parallel_size, cfg.model.pipeline_parallel_size
    world = cfg.launch.nodes * cfg.launch.gpus_per_node
    dp = world // (tp * pp)
    rtp = rollout_tp or int(cfg.rollout.options.get("tensor_parallel_size", tp))
    n = arch.parameters()
    sequences = cfg.grpo.prompts_per_step * cfg.grpo.group_size
    tokens = sequences * (cfg.model.max_prompt_tokens + cfg.rollout.max_new_tokens)
    return MemoryPlan(
        model=cfg.model.name, parameters=n, tp=tp, pp=pp, dp=dp, rollout_tp=rtp,
        weights=2 * n / (tp * pp), grads=4 * n / (tp * pp), optimizer=12 * n / (tp * pp * dp),
        reference=2 * n / (tp * pp), rollout_weights=2 * n / rtp,
        kv_cache=tokens * arch.kv_bytes_per_token() / rtp, rollout_tokens=tokens)


def markdown_table(plans: Sequence[MemoryPlan]) -> str:
    head = ("| model | params | TP x PP x DP | weights | grads | optimizer | reference | rollout weights "
            "(engine TP) | static / GPU | KV for the whole batch / engine GPU (tokens) | waves on 80 GB |")
    rows = [head, "|" + "---|" * 11]
    for p in plans:
        g = lambda b: f"{b / GIB:.1f} GiB"  # noqa: E731
        rows.append(f"| {p.model} | {p.parameters / 1e9:.2f} B | {p.tp} x {p.pp} x {p.dp} | {g(p.weights)} | "
                    f"{g(p.grads)} | {g(p.optimizer)} | {g(p.reference)} | {g(p.rollout_weights)} ({p.rollout_tp}) | "
                    f"{g(p.static)} | {g(p.kv_cache)} ({p.rollout_tokens:,}) | {p.waves} |")
    return "\n".join(rows)


def paper_scale_overrides(size: str) -> list[str]:
    """The overrides the Slurm examples pass: paper rollout length, 32 prompts x 8 samples."""
    return [f"model={size}", "rollout.max_new_tokens=2048", "grpo.prompts_per_step=32", "grpo.group_size=8"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m medssr_nemo.launch.memory", description=__doc__.split("\n")[0])
    parser.add_argument("sizes", nargs="*", default=list(SIZES), help="conf/model names")
    args = parser.parse_args(argv)
    plans = [plan(load_config("base", paper_scale_overrides(size))) for size in args.sizes]
    print(markdown_table(plans))
    return 0


if __name__ == "__main__":
    sys.exit(main())
