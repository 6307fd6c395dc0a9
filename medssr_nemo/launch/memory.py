"""Preflight memory plan: bytes per GPU for a config and its layout, phase by phase.

``plan(cfg)`` counts every large resident tensor of a run (formulas in docs/cluster.md, section
"Memory plan per GPU"); ``preflight(cfg)`` refuses a layout whose peak does not fit the GPU and
names the settings to change; ``medssr launch --plan`` prints it; ``python -m
medssr_nemo.launch.memory`` prints the table in docs/cluster.md.

A run passes through three phases, and only one phase's transient memory exists at a time:

* generation: policy weights + rollout-engine weights + KV cache (the optimizer state and the
  gradient buffer are offloaded / freed while generating, ``offload_optimizer_for_generation``);
* reference pass: policy weights + the reference copy (brought in from the CPU for this pass
  only, ``offload_reference``) + forward activations of one logprob micro-batch + its logits;
* update: weights + gradients + optimizer + activations + logits (the engine's copy is offloaded
  to the CPU during the update, ``offload_rollout_copy``).

Architecture numbers are those of each model's Hugging Face ``config.json``; the parameter count
is checked against the model instantiated on the meta device (tests/test_memory_plan.py).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import math
import sys
from typing import Any, Sequence

from medssr_nemo.config import load_config
from medssr_nemo.config.schema import MedSSRConfig
from medssr_nemo.launch.layout import ParallelLayout, layout_of
from medssr_nemo.policy.megatron.backend import MEGATRON_OPTIONS
from medssr_nemo.policy.megatron.model import padded_vocab_size   # megatron.core loads only when a model is built

GIB = 2**30


class MemoryPlanError(ValueError):
    """The configured layout does not fit the GPU's memory."""


@dataclasses.dataclass(frozen=True)
class Architecture:
    model_type: str
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int
    tied: bool
    qk_norm: bool   # Qwen3 normalises q and k per head

    @property
    def q_dim(self) -> int:
        return self.heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        return self.kv_heads * self.head_dim

    def layer_parameters(self) -> int:
        h = self.hidden
        attention = h * self.q_dim + 2 * h * self.kv_dim + self.q_dim * h
        mlp = 3 * h * self.intermediate
        norms = 2 * h + (2 * self.head_dim if self.qk_norm else 0)
        return attention + mlp + norms

    def parameters(self) -> int:
        embeddings = self.vocab * self.hidden * (1 if self.tied else 2)
        return self.layers * self.layer_parameters() + embeddings + self.hidden

    def kv_bytes_per_token(self, bytes_per_value: int = 2) -> int:
        return 2 * self.layers * self.kv_heads * self.head_dim * bytes_per_value

    def hf_config(self) -> Any:
        """A transformers config with these numbers (to instantiate the model on the meta device)."""
        from transformers import AutoConfig

        return AutoConfig.for_model(
            self.model_type, hidden_size=self.hidden, num_hidden_layers=self.layers,
            num_attention_heads=self.heads, num_key_value_heads=self.kv_heads, head_dim=self.head_dim,
            intermediate_size=self.intermediate, vocab_size=self.vocab, tie_word_embeddings=self.tied)


# From each model's config.json on the Hugging Face Hub (the embedded SmolLM2: its bundled config).
ARCHITECTURES: dict[str, Architecture] = {
    "embedded:smollm2-135m-instruct": Architecture("llama", 576, 30, 9, 3, 64, 1536, 49152, True, False),
    "Qwen/Qwen3-1.7B": Architecture("qwen3", 2048, 28, 16, 8, 128, 6144, 151936, True, True),
    "Qwen/Qwen3-4B": Architecture("qwen3", 2560, 36, 32, 8, 128, 9728, 151936, True, True),
    "Qwen/Qwen3-8B": Architecture("qwen3", 4096, 36, 32, 8, 128, 12288, 151936, False, True),
    "Qwen/Qwen3-14B": Architecture("qwen3", 5120, 40, 40, 8, 128, 17408, 151936, False, True),
    "Qwen/Qwen3-32B": Architecture("qwen3", 5120, 64, 64, 8, 128, 25600, 151936, False, True),
    # the base models the paper trains: the same shapes as their post-trained releases
    "Qwen/Qwen3-1.7B-Base": Architecture("qwen3", 2048, 28, 16, 8, 128, 6144, 151936, True, True),
    "Qwen/Qwen3-4B-Base": Architecture("qwen3", 2560, 36, 32, 8, 128, 9728, 151936, True, True),
    "Qwen/Qwen3-8B-Base": Architecture("qwen3", 4096, 36, 32, 8, 128, 12288, 151936, False, True),
    "Qwen/Qwen3-14B-Base": Architecture("qwen3", 5120, 40, 40, 8, 128, 17408, 151936, False, True),
    "meta-llama/Llama-3.1-8B-Instruct": Architecture("llama", 4096, 32, 32, 8, 128, 14336, 128256, False, False),
}

SIZES = ("smollm2_135m", "qwen3_1_7b", "qwen3_4b", "qwen3_8b", "llama3_1_8b", "qwen3_14b", "qwen3_32b")


def architecture_of(path: str) -> Architecture:
    """The table's numbers for ``model.path``, else those of a local Hugging Face directory."""
    if path in ARCHITECTURES:
        return ARCHITECTURES[path]
    from pathlib import Path

    if (Path(path) / "config.json").exists():
        from transformers import AutoConfig

        c = AutoConfig.from_pretrained(path)
        heads = c.num_attention_heads
        return Architecture(c.model_type, c.hidden_size, c.num_hidden_layers, heads,
                            getattr(c, "num_key_value_heads", None) or heads,
                            getattr(c, "head_dim", None) or c.hidden_size // heads, c.intermediate_size,
                            c.vocab_size, bool(getattr(c, "tie_word_embeddings", False)), c.model_type == "qwen3")
    raise KeyError(f"model.path={path!r}: no architecture numbers (known: {sorted(ARCHITECTURES)}, "
                   f"or a local Hugging Face directory)")


@dataclasses.dataclass(frozen=True)
class Settings:
    """What the plan reads from a config (the megatron defaults are policy/megatron/backend.py's)."""

    backend: str
    tp: int
    pp: int
    dp: int
    bytes_per_weight: int         # 2 for bf16 training, 4 for float32 (hf backend)
    grad_bytes: int               # gradient buffer bytes per parameter
    distributed_optimizer: bool
    sequence_parallel: bool
    recompute: bool
    micro_tokens: int             # tokens of one training micro-batch
    logprob_micro_tokens: int     # tokens of one no-grad logprob micro-batch
    micro_batches: int            # training micro-batches per step on one replica
    reference: bool
    offload_reference: bool
    engine: str
    engine_tp: int
    engine_bytes_per_weight: int
    engine_sequences: int         # the engine's largest batch
    engine_sequence_tokens: int   # prompt + the longest generation
    offload_rollout_copy: bool
    offload_optimizer_for_generation: bool
    chunk_positions: int
    gpu_bytes: int
    reserve_bytes: int


def settings_of(cfg: MedSSRConfig, world_size: int | None = None) -> Settings:
    if world_size is None:
        layout = layout_of(cfg)
    else:  # the world this process was started in (torchrun/srun), not the one launch.* describes
        layout = ParallelLayout(1, world_size, cfg.model.tensor_parallel_size, cfg.model.pipeline_parallel_size).check()
    megatron = cfg.policy.backend == "megatron"
    options = dict(cfg.policy.options or {})
    if megatron:
        options = {**MEGATRON_OPTIONS, **options}
    seq = cfg.model.max_prompt_tokens + cfg.rollout.max_new_tokens
    rows = cfg.grpo.prompts_per_step * cfg.grpo.group_size
    rows_per_replica = max(1, -(-rows // layout.data_parallel)) if megatron else max(1, -(-rows // layout.world_size))
    pack = int(options.get("pack_tokens", 0) or 0) if megatron else 0
    micro_tokens = pack if pack else cfg.policy.micro_batch_size * seq
    lp_rows = int(options.get("logprob_micro_batch_size", 0) or 0) or cfg.policy.micro_batch_size
    lp_tokens = pack if pack else lp_rows * seq
    micro_batches = max(1, math.ceil(rows_per_replica * seq / micro_tokens)) if pack else \
        max(1, -(-rows_per_replica // cfg.policy.micro_batch_size))
    train_bytes = 2 if (megatron and cfg.policy.bf16) or cfg.model.dtype in ("bfloat16", "float16") else 4
    engine = cfg.rollout.engine
    engine_tp = int((cfg.rollout.options or {}).get("tensor_parallel_size", 1)) if engine != "inprocess" else 1
    longest_new = max(cfg.rollout.max_new_tokens, cfg.eval.max_new_tokens, cfg.label.max_new_tokens or 0)
    return Settings(
        backend=cfg.policy.backend, tp=layout.tensor_parallel, pp=layout.pipeline_parallel, dp=layout.data_parallel,
        bytes_per_weight=train_bytes,
        grad_bytes=(2 if options.get("grad_reduce_dtype") == "bf16" else 4) if megatron else train_bytes,
        distributed_optimizer=megatron,
        sequence_parallel=megatron and layout.tensor_parallel > 1 and options.get("sequence_parallel") != "off",
        recompute=cfg.policy.gradient_checkpointing, micro_tokens=micro_tokens, logprob_micro_tokens=lp_tokens,
        micro_batches=micro_batches, reference=cfg.grpo.kl_coef > 0,
        offload_reference=bool(options.get("offload_reference", False)),
        engine=engine, engine_tp=engine_tp,
        engine_bytes_per_weight=2 if megatron or cfg.model.dtype != "float32" else 4,
        engine_sequences=cfg.rollout.batch_size,
        engine_sequence_tokens=cfg.model.max_prompt_tokens + longest_new,
        offload_rollout_copy=megatron and bool(options.get("offload_rollout_copy", False)),
        offload_optimizer_for_generation=megatron and bool(options.get("offload_optimizer_for_generation", False)),
        chunk_positions=int(options.get("logprob_chunk_positions", 1024)),
        gpu_bytes=int(cfg.launch.gpu_memory_gib * GIB), reserve_bytes=int(cfg.launch.memory_reserve_gib * GIB))


def parameters_per_gpu(arch: Architecture, tp: int, pp: int) -> int:
    """Parameters of the largest pipeline stage's tensor-parallel shard: ceil(L / PP) layers
    (matrices split by TP, norms replicated) plus the embedding (first stage) or the output
    layer and final norm (last stage), the vocabulary padded to a multiple of 128 x TP. With PP > 1
    a tied output layer is a second copy on the last stage, as in megatron-core."""
    norms = 2 * arch.hidden + (2 * arch.head_dim if arch.qk_norm else 0)
    layer = (arch.layer_parameters() - norms) // tp + norms
    per_stage = math.ceil(arch.layers / pp) * layer
    vocab_rows = padded_vocab_size(arch.vocab, tp) // tp * arch.hidden
    if pp == 1:
        ends = vocab_rows * (1 if arch.tied else 2) + arch.hidden
    else:
        ends = vocab_rows + arch.hidden
    return per_stage + ends


def activation_bytes_per_layer(arch: Architecture, tokens: int, tp: int, sequence_parallel: bool) -> int:
    """Bytes one transformer layer keeps for its backward pass, bf16, T = tokens of a micro-batch:

    T x [8h + (4 q + 4 kv + 6 F) / t] without sequence parallelism, T x (12h + 4 q + 4 kv + 6 F) / t
    with it (q = heads x head_dim, kv = kv_heads x head_dim, F = the MLP width). The 8h are the
    inputs of the two norms and of the QKV and fc1 matmuls (replicated over TP unless sequence
    parallel); the TP-split part is Q, K, V, the attention output, fc1's 2F output and the SwiGLU
    output. Flash attention keeps no T x T softmax. For a GPT layer (q = kv = h, a 4h GeLU MLP
    storing 16h, two dropout masks) this is Korthikanti et al. (2022)'s s b h (10 + 24 / t).
    """
    h, q, kv, f = arch.hidden, arch.q_dim, arch.kv_dim, arch.intermediate
    split = 4 * q + 4 * kv + 6 * f
    if sequence_parallel:
        return tokens * (8 * h + split) // tp
    return tokens * (8 * h) + tokens * split // tp


@dataclasses.dataclass(frozen=True)
class MemoryPlan:
    model: str
    parameters: int
    settings: Settings
    parameters_per_gpu: int
    weights: int
    grads: int
    optimizer: int
    reference: int
    activations: int
    logits: int
    logprob_pass: int          # forward activations + logits of one no-grad logprob micro-batch
    engine_weights: int
    kv_cache: int

    @property
    def tp(self) -> int:
        return self.settings.tp

    @property
    def pp(self) -> int:
        return self.settings.pp

    @property
    def dp(self) -> int:
        return self.settings.dp

    def phases(self) -> dict[str, int]:
        s = self.settings
        state = self.weights + self.grads + self.optimizer
        resident_ref = 0 if s.offload_reference else self.reference
        engine_in_update = 0 if (s.offload_rollout_copy or s.engine != "inprocess") else self.engine_weights
        generation_state = self.weights if s.offload_optimizer_for_generation else state
        return {
            "generation": generation_state + resident_ref + self.engine_weights + self.kv_cache,
            "reference pass": generation_state + self.reference + engine_in_update + self.logprob_pass
            if s.reference else 0,
            "update": state + resident_ref + engine_in_update + self.activations + self.logits,
        }

    @property
    def peak_phase(self) -> str:
        return max(self.phases().items(), key=lambda kv: kv[1])[0]

    @property
    def peak(self) -> int:
        return max(self.phases().values())

    @property
    def budget(self) -> int:
        return self.settings.gpu_bytes - self.settings.reserve_bytes

    @property
    def fits(self) -> bool:
        return self.peak <= self.budget


def plan(cfg: MedSSRConfig, world_size: int | None = None) -> MemoryPlan:
    """The plan for ``cfg``'s layout (``world_size``: override launch.nodes x launch.gpus_per_node)."""
    arch = architecture_of(cfg.model.path)
    s = settings_of(cfg, world_size)
    n = arch.parameters()
    if s.backend == "megatron":
        per_gpu = parameters_per_gpu(arch, s.tp, s.pp)
        vocab_shard = padded_vocab_size(arch.vocab, s.tp) // s.tp
    else:  # the hf backend: one full replica per GPU, data parallel only
        per_gpu, vocab_shard = n, arch.vocab
    weights = s.bytes_per_weight * per_gpu
    grads = s.grad_bytes * per_gpu
    # Adam: fp32 master weights (only when the weights are bf16) + m + v; the distributed
    # optimizer shards them over the data-parallel ranks.
    optimizer_bytes = (12 if s.bytes_per_weight == 2 else 8) * per_gpu
    optimizer = optimizer_bytes // s.dp if s.distributed_optimizer else optimizer_bytes
    reference = weights if s.reference else 0
    layers = math.ceil(arch.layers / s.pp)
    tp_act = s.tp if s.backend == "megatron" else 1
    full = activation_bytes_per_layer(arch, s.micro_tokens, tp_act, s.sequence_parallel)
    if s.recompute:  # full recompute: each layer keeps its input; one layer is rebuilt at a time
        kept = 2 * s.micro_tokens * arch.hidden // (tp_act if s.sequence_parallel else 1)
        per_micro = layers * kept + full
    else:
        per_micro = layers * full
    in_flight = min(s.pp, s.micro_batches)  # 1F1B: the first stage holds up to PP micro-batches
    activations = per_micro * in_flight * s.bytes_per_weight // 2
    # logits (and their gradient) in the weights' dtype, plus float32 slices of the log-softmax
    chunk = 3 * 4 * min(s.chunk_positions, s.micro_tokens) * vocab_shard
    logits = 2 * s.bytes_per_weight * s.micro_tokens * vocab_shard + chunk
    lp_layer = activation_bytes_per_layer(arch, s.logprob_micro_tokens, tp_act, s.sequence_parallel)
    logprob_pass = lp_layer + s.bytes_per_weight * s.logprob_micro_tokens * vocab_shard + chunk
    if s.engine == "inprocess":
        # the in-process engine holds a whole (unsharded) copy of the model on every rank; on
        # the hf backend it samples from the policy's own module (no second copy)
        engine_weights = s.engine_bytes_per_weight * n if s.backend == "megatron" else 0
        kv = s.engine_sequences * s.engine_sequence_tokens * arch.kv_bytes_per_token(s.engine_bytes_per_weight)
    else:
        engine_weights = s.engine_bytes_per_weight * n // s.engine_tp
        kv = s.engine_sequences * s.engine_sequence_tokens * arch.kv_bytes_per_token() // s.engine_tp
    return MemoryPlan(cfg.model.name, n, s, per_gpu, weights, grads, optimizer, reference, activations, logits,
                      logprob_pass, engine_weights, kv)


def advice(p: MemoryPlan) -> list[str]:
    """Settings that shrink the peak phase, most effective first."""
    s, phase = p.settings, p.peak_phase
    tips: list[str] = []
    if phase == "generation":
        tips.append(f"rollout.batch_size={s.engine_sequences} (the engine's largest batch: its KV cache "
                    f"is {p.kv_cache / GIB:.1f} GiB)")
        if s.backend == "megatron" and not s.offload_optimizer_for_generation:
            tips.append("policy.options.offload_optimizer_for_generation=true")
        if s.engine == "inprocess" and s.backend == "megatron":
            tips.append("rollout.engine=tensorrt_llm with rollout.options.tensor_parallel_size (the in-process "
                        f"engine keeps a whole {p.engine_weights / GIB:.1f} GiB copy on every GPU)")
    else:
        if s.backend == "megatron" and not s.recompute:
            tips.append("policy.gradient_checkpointing=true (activation recompute)")
        if s.backend == "megatron" and s.tp > 1 and not s.sequence_parallel:
            tips.append("policy.options.sequence_parallel=auto")
        if s.backend == "megatron":
            tips.append(f"policy.options.pack_tokens (tokens per micro-batch, now {s.micro_tokens:,})")
        else:
            tips.append(f"policy.micro_batch_size (now {s.micro_tokens:,} tokens per micro-batch)")
        if s.reference and not s.offload_reference and s.backend == "megatron":
            tips.append("policy.options.offload_reference=true")
        if s.backend == "megatron" and not s.offload_rollout_copy and s.engine == "inprocess":
            tips.append("policy.options.offload_rollout_copy=true")
    tips.append("model.tensor_parallel_size / model.pipeline_parallel_size (more GPUs per replica)")
    return tips


def describe(p: MemoryPlan) -> str:
    """A human-readable plan: every term, every phase, the verdict."""
    s = p.settings
    g = lambda b: f"{b / GIB:6.1f} GiB"  # noqa: E731
    lines = [
        f"memory plan for {p.model} ({p.parameters / 1e9:.2f} B parameters, {p.parameters_per_gpu / 1e9:.2f} B on "
        f"the largest shard), {s.backend} backend, TP {s.tp} x PP {s.pp} x DP {s.dp}",
        f"  micro-batch {s.micro_tokens:,} tokens; recompute {'full' if s.recompute else 'off'}; "
        f"sequence parallel {'on' if s.sequence_parallel else 'off'}; engine {s.engine}",
        f"  weights               {g(p.weights)}",
        f"  gradients             {g(p.grads)}",
        f"  optimizer state       {g(p.optimizer)}",
        f"  reference             {g(p.reference)}{' (on the CPU between passes)' if s.offload_reference else ''}",
        f"  activations           {g(p.activations)}",
        f"  logits                {g(p.logits)}",
        f"  logprob pass          {g(p.logprob_pass)}",
        f"  engine weights        {g(p.engine_weights)}"
        f"{' (on the CPU during the update)' if s.offload_rollout_copy else ''}",
        f"  KV cache              {g(p.kv_cache)} ({s.engine_sequences} x {s.engine_sequence_tokens:,} tokens)",
    ]
    for phase, total in p.phases().items():
        if total:
            lines.append(f"  phase {phase:<16}{g(total)}")
    verdict = "fits" if p.fits else "does NOT fit"
    lines.append(f"  peak {g(p.peak)} ({p.peak_phase}) {verdict} in {g(p.budget)} "
                 f"(launch.gpu_memory_gib={s.gpu_bytes / GIB:g} minus "
                 f"launch.memory_reserve_gib={s.reserve_bytes / GIB:g})")
    return "\n".join(lines)


def preflight(cfg: MedSSRConfig, world_size: int | None = None) -> MemoryPlan | None:
    """Refuse (``MemoryPlanError``) a config whose peak phase does not fit the GPU; None when the
    architecture is unknown (nothing to check) or ``launch.preflight`` is off."""
    if not cfg.launch.preflight:
        return None
    try:
        p = plan(cfg, world_size)
    except KeyError:
        return None
    if not p.fits:
        raise MemoryPlanError(
            f"{p.model} at TP {p.tp} x PP {p.pp} x DP {p.dp} needs {p.peak / GIB:.1f} GiB per GPU in its "
            f"{p.peak_phase} phase, more than the {p.budget / GIB:.1f} GiB available; change "
            + "; or ".join(advice(p)) + f" (launch.preflight=false skips this check)\n{describe(p)}")
    return p


def preflight_this_process(cfg: MedSSRConfig) -> MemoryPlan | None:
    """``preflight`` for a process about to train (``medssr run`` / ``train``): only when it will
    use a GPU, with the world it was started in (WORLD_SIZE) when there is one."""
    import os

    import torch

    if not (torch.cuda.is_available() or cfg.policy.device == "cuda"):
        return None
    world = os.environ.get("WORLD_SIZE")
    return preflight(cfg, int(world) if world else None)


def markdown_table(plans: Sequence[MemoryPlan]) -> str:
    head = ("| model | params | TP x PP x DP | micro-batch tokens | weights | grads | optimizer | reference "
            "| activations | logits | engine weights | KV cache | generation | reference pass | update "
            "| peak / budget |")
    rows = [head, "|" + "---|" * 16]
    g = lambda b: f"{b / GIB:.1f}"  # noqa: E731
    for p in plans:
        s, ph = p.settings, p.phases()
        rows.append(f"| {p.model} | {p.parameters / 1e9:.2f} B | {s.tp} x {s.pp} x {s.dp} | {s.micro_tokens:,} | "
                    f"{g(p.weights)} | {g(p.grads)} | {g(p.optimizer)} | {g(p.reference)} | {g(p.activations)} | "
                    f"{g(p.logits)} | {g(p.engine_weights)} | {g(p.kv_cache)} | {g(ph['generation'])} | "
                    f"{g(ph['reference pass'])} | {g(ph['update'])} | {g(p.peak)} / {g(p.budget)} |")
    return "\n".join(rows)


@functools.lru_cache(maxsize=None)
def shipped(size: str) -> MedSSRConfig:
    """The config a ``conf/model`` file ships (``medssr run model=<size>``); cached, do not mutate."""
    return load_config("base", [f"model={size}"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m medssr_nemo.launch.memory", description=__doc__.split("\n")[0])
    parser.add_argument("sizes", nargs="*", default=list(SIZES), help="conf/model names")
    parser.add_argument("--describe", action="store_true", help="every term and phase per size, not the table")
    args = parser.parse_args(argv)
    plans = [plan(shipped(size)) for size in args.sizes]
    print("\n\n".join(describe(p) for p in plans) if args.describe else markdown_table(plans))
    return 0


if __name__ == "__main__":
    sys.exit(main())
