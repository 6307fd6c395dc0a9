"""The ``megatron`` policy backend: a megatron-core GPTModel, tensor x pipeline x data parallel.

Same contract as the ``hf`` backend (``policy/interfaces.py``), SPMD under torchrun: every rank
passes its own share of the step's rows. A step is:

1. gather the shares of this model replica's TP x PP ranks into one batch (``parallel.py``);
2. global normalisers: token/sequence counts of the whole step, summed over replicas;
3. megatron-core's pipeline schedule (``get_forward_backward_func``) runs the micro-batches; the
   last stage turns its vocabulary slice of the logits into per-token logprobs with a
   vocabulary-parallel log-softmax (``logprobs.py``) and calls the GRPO ``loss_fn``, whose loss is
   already divided by the global counts, so micro-batch losses and gradients are *summed*
   (``calculate_per_token_loss``; the DDP wrapper sums over replicas instead of averaging);
4. distributed optimiser (Adam, fp32 master weights): gradient norm, skip on inf/nan, clip, step.

So neither the layout nor the micro-batch size changes the objective.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
from pathlib import Path
from typing import Any, Iterator, Mapping

import torch
import torch.distributed as dist

from medssr_nemo.config.schema.policy import PolicyConfig
from medssr_nemo.models import load_tokenizer, resolve_model_dir
from medssr_nemo.policy import packing
from medssr_nemo.policy.batching import check_token_batch, micro_batches
from medssr_nemo.policy.interfaces import Colocatable, PolicyBackend, TokenBatch, TrainerMemory
from medssr_nemo.policy.loss_contract import LossFunction, StepLoss, global_normalisers
from medssr_nemo.policy.megatron import checkpoint, conversion, offload, parallel, weights
from medssr_nemo.policy.megatron.cpu_compat import in_device_scope
from medssr_nemo.policy.megatron.logprobs import vocab_parallel_token_logprobs
from medssr_nemo.policy.megatron.model import (
    DEFAULT_VOCAB_MULTIPLE,
    arch_spec_from_hf,
    build_gpt_model,
    transformer_config,
    transformer_engine_available,
)
from medssr_nemo.policy.megatron.speed import speed_settings
from medssr_nemo.policy.schedules import LRSchedule

# policy.options keys this backend understands, with their defaults
MEGATRON_OPTIONS: dict[str, Any] = {
    "logprob_chunk_positions": 1024,     # (row, position) pairs per float32 softmax slice
    "logprob_micro_batch_size": 0,       # rows per no-grad logprob forward; 0 = micro_batch_size
    "vocab_multiple": DEFAULT_VOCAB_MULTIPLE,  # pad the vocabulary to a multiple of this x TP
    "transformer_engine": "auto",        # auto | on | off: TE layer spec (needs TE and CUDA)
    # memory and speed (docs/cluster.md): 0 = pad rows to the micro-batch's longest; > 0 = pack
    # sequences first-fit-decreasing into micro-batches of at most this many tokens
    "pack_tokens": 0,
    "sequence_parallel": "auto",         # auto (on when TP > 1 on CUDA) | on | off
    "gpu_fusions": "auto",               # auto (on with CUDA + TE) | on | off: fused kernels, overlapped comms
    "grad_reduce_dtype": "fp32",         # fp32 | bf16: gradient buffer and data-parallel reduce
    "offload_reference": True,           # the KL reference waits on the CPU between its passes (GPU only)
    "offload_rollout_copy": True,        # the in-process engine's copy waits on the CPU during the update
    "offload_optimizer_for_generation": True,  # optimizer state to the CPU, gradient buffer freed, while generating
}


def check_options(options: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(options) - set(MEGATRON_OPTIONS))
    if unknown:
        raise ValueError(f"policy.options has keys the megatron backend does not know: {unknown}; "
                         f"known: {sorted(MEGATRON_OPTIONS)}")
    merged = {**MEGATRON_OPTIONS, **options}
    for key in ("logprob_chunk_positions", "logprob_micro_batch_size", "vocab_multiple", "pack_tokens"):
        value = merged[key]
        low = 0 if key in ("logprob_micro_batch_size", "pack_tokens") else 1
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ValueError(f"policy.options.{key}={value!r} must be an integer >= {low}")
    for key in ("transformer_engine", "sequence_parallel", "gpu_fusions"):
        if merged[key] not in ("auto", "on", "off"):
            raise ValueError(f"policy.options.{key}={merged[key]!r}; choose auto, on or off")
    if merged["grad_reduce_dtype"] not in ("fp32", "bf16"):
        raise ValueError(f"policy.options.grad_reduce_dtype={merged['grad_reduce_dtype']!r}; choose fp32 or bf16")
    for key in ("offload_reference", "offload_rollout_copy", "offload_optimizer_for_generation"):
        if not isinstance(merged[key], bool):
            raise ValueError(f"policy.options.{key}={merged[key]!r} must be true or false")
    return merged


class MegatronPolicyBackend(PolicyBackend, Colocatable):
    """Train a Llama/Qwen2/Qwen3 checkpoint with megatron-core.

    Build it from ``model_ref`` (a ``load_causal_lm`` reference: embedded name, HF directory) or
    from an already built transformers ``model`` + ``tokenizer`` (its weights are imported; under
    torchrun every rank must pass the same weights, each rank takes its own slice of them).
    ``reference=False`` skips the frozen copy (kl_coef == 0). To resume, build it as the first
    time (any layout), then ``load``.
    """

    def __init__(self, cfg: PolicyConfig, model_ref: str | None = None, *, model: Any = None,
                 tokenizer: Any = None, reference: bool = True, total_steps: int | None = None,
                 tensor_parallel_size: int = 1, pipeline_parallel_size: int = 1, seed: int = 0) -> None:
        self.cfg = cfg
        self.options = check_options(cfg.options)
        if cfg.device == "cpu" and torch.cuda.is_available():
            raise ValueError("policy.device='cpu' with a visible CUDA device: megatron-core would still use the "
                             "GPU; hide it (CUDA_VISIBLE_DEVICES=) to train on the CPU")
        if cfg.device == "cuda" and not torch.cuda.is_available():
            raise RuntimeError("policy.device='cuda' but torch sees no CUDA device; use policy.device=auto or cpu")
        self.layout = parallel.ensure_model_parallel(tensor_parallel_size, pipeline_parallel_size, seed)
        self.hf_config, source, self.tokenizer = self._resolve_source(model_ref, model, tokenizer)
        self.generation_config = self._generation_config(model_ref, model)
        self.arch = arch_spec_from_hf(self.hf_config, tensor_parallel_size, self.options["vocab_multiple"])
        self.bf16 = bool(cfg.bf16 and torch.cuda.is_available())
        use_te = {"auto": transformer_engine_available(), "on": True, "off": False}[self.options["transformer_engine"]]
        if use_te and not transformer_engine_available():
            raise RuntimeError("policy.options.transformer_engine=on needs TransformerEngine and a CUDA device; "
                               "use auto (TE when available, else megatron-core's local layers) or off")
        self.uses_transformer_engine = use_te
        self.speed = speed_settings(self.options, cuda=torch.cuda.is_available(), transformer_engine=use_te,
                                    tensor_parallel_size=tensor_parallel_size)
        self.sequence_parallel = self.speed.sequence_parallel
        self.megatron_model, self.optimizer, self.reference_model = self._build(source, reference, use_te)
        # GPU memory between phases (offload.py; the plan in launch/memory.py counts on it)
        self.training_state = offload.TrainingState(self.megatron_model, self.optimizer,
                                                    self.options["offload_optimizer_for_generation"])
        self.training_state.offload()
        if self.options["offload_reference"]:
            offload.park(self.reference_model)
        self.schedule = LRSchedule(cfg.lr, cfg.schedule, cfg.warmup_steps, total_steps, cfg.min_lr_ratio)
        self.step = 0  # optimiser steps taken
        self._rollout_model: Any = None

    # ------------------------------------------------------------------ construction
    @staticmethod
    def _resolve_source(model_ref: str | None, model: Any, tokenizer: Any) -> tuple[Any, conversion.HFWeights, Any]:
        if model is not None:
            if tokenizer is None:
                raise ValueError("MegatronPolicyBackend: a built model needs its tokenizer too")
            return model.config, conversion.HFWeights(model.state_dict()), tokenizer
        if model_ref is None:
            raise ValueError("MegatronPolicyBackend needs a model reference (model.path) or a built model")
        from transformers import AutoConfig

        directory = resolve_model_dir(model_ref)
        if not Path(directory).exists():
            raise FileNotFoundError(f"model.path={model_ref!r}: the megatron backend reads local Hugging Face "
                                    f"directories (or embedded models), and {directory} is not one")
        return (AutoConfig.from_pretrained(directory), conversion.HFWeights(directory),
                tokenizer if tokenizer is not None else load_tokenizer(model_ref))

    @staticmethod
    def _generation_config(model_ref: str | None, model: Any) -> Any:
        """The generation config to write next to an exported checkpoint (EOS ids, defaults)."""
        if model is not None:
            return getattr(model, "generation_config", None)
        from transformers import GenerationConfig

        directory = Path(resolve_model_dir(model_ref))
        return GenerationConfig.from_pretrained(directory) if (directory / "generation_config.json").exists() else None

    @in_device_scope
    def _build(self, source: conversion.HFWeights, reference: bool, use_te: bool):
        from megatron.core.distributed import DistributedDataParallel, DistributedDataParallelConfig
        from megatron.core.optimizer import OptimizerConfig, get_megatron_optimizer
        from megatron.core.transformer.module import Float16Module

        config = transformer_config(self.arch, tensor_parallel_size=self.layout.tensor_parallel,
                                    pipeline_parallel_size=self.layout.pipeline_parallel, bf16=self.bf16,
                                    recompute_activations=self.cfg.gradient_checkpointing,
                                    **self.speed.transformer_overrides())
        gpt = build_gpt_model(self.arch, config, use_transformer_engine=use_te)
        weights.load_hf_weights(gpt, self.arch, source)
        ref = None
        if reference:
            ref = build_gpt_model(self.arch, dataclasses.replace(config), use_transformer_engine=use_te)
            with torch.no_grad():
                for mine, theirs in zip(ref.parameters(), gpt.parameters(), strict=True):
                    mine.copy_(theirs)
            ref = (Float16Module(ref.config, ref) if self.bf16 else ref).eval().requires_grad_(False)
        if self.bf16:
            gpt = Float16Module(config, gpt)
        ddp_config = DistributedDataParallelConfig(use_distributed_optimizer=True, **self.speed.ddp_overrides())
        model = DistributedDataParallel(config=config, ddp_config=ddp_config, module=gpt)
        # Our losses are divided by global token counts already: only sum gradients (no scaling
        # by the schedule's token count).
        from megatron.core.distributed import finalize_model_grads

        config.finalize_model_grads_func = functools.partial(_finalize_without_token_scaling, finalize_model_grads)
        config.no_sync_func = model.no_sync
        optimizer_config = OptimizerConfig(
            optimizer="adam", lr=self.cfg.lr, min_lr=0.0, weight_decay=self.cfg.weight_decay,
            adam_beta1=self.cfg.betas[0], adam_beta2=self.cfg.betas[1], adam_eps=self.cfg.adam_eps,
            clip_grad=self.cfg.grad_clip, bf16=self.bf16, params_dtype=config.params_dtype,
            use_distributed_optimizer=True,
        )
        # config_overrides={}: weight decay on every parameter, as torch AdamW in the hf backend and
        # verl 0.3.1's FSDP actor (megatron's default, None, exempts biases and 1-D parameters)
        optimizer = get_megatron_optimizer(optimizer_config, [model], config_overrides={})
        return model, optimizer, ref

    # ------------------------------------------------------------------ batches
    def _joint_batch(self, batch: Mapping[str, Any]) -> tuple[dict[str, Any], list[int], int]:
        """This replica's rows on the device, each member's row count and this rank's index."""
        from megatron.core import parallel_state

        group = parallel_state.get_model_parallel_group()
        joint, counts = parallel.gather_model_parallel_batch(batch, group)
        member = dist.get_rank(group) if group is not None and dist.get_world_size(group) > 1 else 0
        target = parallel.device()
        joint = {k: v.to(target) if isinstance(v, torch.Tensor) else v for k, v in joint.items()}
        return joint, counts, member

    def _vocab_slice(self) -> tuple[int, Any]:
        from megatron.core import parallel_state

        per_rank = self.arch.padded_vocab_size // self.layout.tensor_parallel
        start = parallel_state.get_tensor_model_parallel_rank() * per_rank
        group = parallel_state.get_tensor_model_parallel_group() if self.layout.tensor_parallel > 1 else None
        return start, group

    def _forward(self, model: Any, micro: Mapping[str, torch.Tensor]) -> torch.Tensor:
        ids = micro["input_ids"]
        if "cu_seqlens" in micro:  # packed sequences (policy/packing.py)
            return self._forward_packed(model, micro)
        width = ids.shape[1]
        positions = torch.arange(width, device=ids.device).unsqueeze(0).expand_as(ids)
        # Right padding: a causal mask alone keeps real tokens from seeing padding. The local
        # attention gets it explicitly (True = hidden): left to itself it would build one with
        # device="cuda", also while activation recomputation re-runs a layer in the backward
        # pass, where cpu_compat's device scope is not active. TE applies causality itself.
        mask = None
        if not self.uses_transformer_engine:
            mask = torch.ones((width, width), dtype=torch.bool, device=ids.device).triu(1)[None, None]
        return model(ids, positions, attention_mask=mask)

    def _forward_packed(self, model: Any, micro: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """TransformerEngine: THD attention over ``cu_seqlens`` (RoPE restarts per sequence).
        Local spec: a block-diagonal causal mask; RoPE then runs on positions of the packed row,
        which changes no attention score (they depend on relative positions only)."""
        if self.uses_transformer_engine:
            return model(micro["input_ids"], micro["position_ids"], attention_mask=None,
                         packed_seq_params=packing.packed_seq_params(micro))
        mask = packing.block_causal_mask(micro["segment_ids"])
        return model(micro["input_ids"], micro["position_ids"], attention_mask=mask)

    def _micro_batches(self, joint: Mapping[str, Any], rows: int) -> list[dict[str, Any]]:
        """Packed micro-batches of ``pack_tokens`` tokens, or padded slices of ``rows`` rows."""
        budget = self.options["pack_tokens"]
        multiple = self.layout.tensor_parallel if self.sequence_parallel else 1  # SP splits the sequence over TP
        if budget:
            return packing.pack_micro_batches(joint, budget, pad_multiple=multiple)
        return [packing.pad_width(micro, multiple) for micro in micro_batches(joint, rows)]

    def _run_schedule(self, model: Any, micros: list[dict[str, Any]], loss_func, forward_only: bool) -> list[Any]:
        from megatron.core.pipeline_parallel import get_forward_backward_func

        def forward_step(data_iterator, chunk):
            micro = next(data_iterator)
            return self._forward(chunk, micro), functools.partial(loss_func, micro)

        return get_forward_backward_func()(
            forward_step_func=forward_step,
            data_iterator=iter(micros),
            model=[model],
            num_microbatches=len(micros),
            seq_length=max(m["input_ids"].shape[1] for m in micros),
            micro_batch_size=max(m["input_ids"].shape[0] for m in micros),
            forward_only=forward_only,
            collect_non_loss_data=forward_only,
        )

    # ------------------------------------------------------------------ logprobs
    @in_device_scope
    @torch.no_grad()
    def _logprobs_with(self, model: Any, batch: TokenBatch, temperature: float) -> torch.Tensor:
        from megatron.core import parallel_state

        check_token_batch(batch, ("input_ids", "attention_mask"))
        out_device, width = batch["input_ids"].device, int(batch["input_ids"].shape[1])
        joint, counts, member = self._joint_batch(batch)
        size = self.options["logprob_micro_batch_size"] or self.cfg.micro_batch_size
        micros = self._micro_batches(joint, size)
        vocab_start, group = self._vocab_slice()

        def collect(micro, logits, non_loss_data=True):
            logprobs, _ = vocab_parallel_token_logprobs(
                logits, micro["input_ids"], vocab_start=vocab_start, vocab_size=self.arch.vocab_size,
                group=group, temperature=temperature, chunk_positions=self.options["logprob_chunk_positions"])
            return packing.unpack(logprobs, micro) if "cu_seqlens" in micro else logprobs

        model.eval()
        pieces = self._run_schedule(model, micros, collect, forward_only=True)
        rows, length = joint["input_ids"].shape
        result = None
        if parallel_state.is_pipeline_last_stage():
            result = torch.zeros((rows, length), dtype=torch.float32, device=parallel.device())
            start = 0
            for micro, piece in zip(micros, pieces, strict=True):
                if "row_index" in micro:  # packed: the bin's rows, in packing order
                    result[micro["row_index"].to(result.device), :piece.shape[1]] = piece
                    continue
                piece = piece[:, :length]  # sequence parallelism may have padded the width
                result[start:start + piece.shape[0], :piece.shape[1]] = piece
                start += piece.shape[0]
        result = parallel.broadcast_from_last_stage(result, (rows, length), torch.float32)
        result = torch.where(joint["attention_mask"].bool(), result, torch.zeros_like(result))
        return parallel.own_rows(result, counts, member, width).to(out_device)

    def logprobs(self, batch: TokenBatch, temperature: float = 1.0) -> torch.Tensor:
        self._park_rollout_copy()
        return self._logprobs_with(self.megatron_model, batch, temperature)

    def reference_logprobs(self, batch: TokenBatch, temperature: float = 1.0) -> torch.Tensor:
        if self.reference_model is None:
            raise RuntimeError("this megatron backend was built without a reference policy (reference=False, "
                               "as for grpo.kl_coef=0); build it with reference=True to get reference logprobs")
        self._park_rollout_copy()
        with offload.visiting(self.reference_model, parallel.device(), self.options["offload_reference"]):
            return self._logprobs_with(self.reference_model, batch, temperature)

    def _park_rollout_copy(self) -> None:
        """The in-process engine's copy leaves the GPU until the next refit (export_hf_weights)."""
        if self.options["offload_rollout_copy"]:
            offload.park(self._rollout_model)

    @in_device_scope
    @torch.no_grad()
    def full_logits(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Logits over the real vocabulary [B, T, V] for ``input_ids`` (the same on every rank of a
        replica); gathered over TP and broadcast over PP. For parity checks, not for training."""
        ids = input_ids.to(parallel.device())
        micro = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
        vocab_start, group = self._vocab_slice()

        def collect(micro, logits, non_loss_data=True):
            if group is None:
                return logits.float()
            shards = [torch.empty_like(logits) for _ in range(dist.get_world_size(group))]
            dist.all_gather(shards, logits.contiguous(), group=group)
            return torch.cat(shards, dim=-1).float()

        self.megatron_model.eval()
        pieces = self._run_schedule(self.megatron_model, [micro], collect, forward_only=True)
        shape = (*ids.shape, self.arch.padded_vocab_size)
        full = parallel.broadcast_from_last_stage(pieces[0] if pieces else None, shape, torch.float32)
        return full[..., : self.arch.vocab_size].to(input_ids.device)

    # ------------------------------------------------------------------ training
    def _data_parallel_group(self) -> Any:
        from megatron.core import parallel_state

        return parallel_state.get_data_parallel_group() if self.layout.data_parallel > 1 else None

    def train_step(self, batch: TokenBatch, loss_fn: LossFunction) -> dict[str, float]:
        """One optimiser step on the step's rows (this rank's share), honouring what ``loss_fn``
        declares (temperature, entropy) like the ``hf`` backend."""
        self._park_rollout_copy()
        with self.training_state.on_gpu():
            return self._train_step(batch, loss_fn)

    @in_device_scope
    def _train_step(self, batch: TokenBatch, loss_fn: LossFunction) -> dict[str, float]:
        from megatron.core import parallel_state

        check_token_batch(batch, ("input_ids", "attention_mask", "response_mask"))
        joint, _, _ = self._joint_batch(batch)
        dp_group = self._data_parallel_group()
        step = StepLoss(loss_fn, global_normalisers(joint["response_mask"], dp_group, parallel.device()),
                        parallel.device())
        vocab_start, group = self._vocab_slice()

        def loss_func(micro, logits):
            logprobs, entropy = vocab_parallel_token_logprobs(
                logits, micro["input_ids"], vocab_start=vocab_start, vocab_size=self.arch.vocab_size,
                group=group, temperature=loss_fn.temperature, chunk_positions=self.options["logprob_chunk_positions"],
                entropy=loss_fn.entropy)
            if "cu_seqlens" in micro:  # packed: the loss sees the bin's rows in their padded form
                logprobs = packing.unpack(logprobs, micro)
                entropy = packing.unpack(entropy, micro) if entropy is not None else None
                micro = micro["rows"]
            loss = step(logprobs, micro, entropy)
            # (loss, token count, reduced metrics): with calculate_per_token_loss the schedule
            # neither divides by the number of micro-batches nor by the tokens
            return loss, micro["response_mask"].sum().to(torch.int), {}

        self.megatron_model.train()
        self.megatron_model.zero_grad_buffer()
        self.optimizer.zero_grad()
        micros = self._micro_batches(joint, self.cfg.micro_batch_size)
        self.last_micro_batch_tokens = [int(m["input_ids"].numel()) for m in micros]  # for tests and benchmarks
        self._run_schedule(self.megatron_model, micros, loss_func, forward_only=False)
        self.megatron_model.eval()
        lr = self.schedule(self.step)
        grad_norm, skipped = self._optimizer_step(lr)
        if not skipped:
            self.step += 1
        last = parallel_state.is_pipeline_last_stage()
        loss_total = step.loss_total
        if last and dp_group is not None:
            dist.all_reduce(loss_total, group=dp_group)
        loss_value = parallel.broadcast_from_last_stage(loss_total.reshape(1) if last else None, (1,), torch.float64)
        metrics = parallel.broadcast_object_from_last_stage(step.metrics.reduce(dp_group, parallel.device()) if last
                                                            else None)
        return step.step_metrics(float(loss_value[0]), grad_norm, lr, skipped, metrics)

    def _optimizer_step(self, lr: float) -> tuple[float, bool]:
        """Gradient norm, then (if finite) clip and Adam step at ``lr``. A nan/inf gradient would
        poison the weights and Adam's moments, so that update is skipped (as in the hf backend)."""
        from megatron.core.optimizer.clip_grads import clip_grad_by_total_norm_fp32

        for group in self.optimizer.param_groups:
            group["lr"] = lr
        found_inf = self.optimizer.prepare_grads()
        grad_norm = self._grad_norm()
        if found_inf or not math.isfinite(grad_norm):
            return grad_norm, True
        if self.cfg.grad_clip > 0:
            for sub in getattr(self.optimizer, "chained_optimizers", [self.optimizer]):
                params = sub.get_parameters()
                if params:
                    clip_grad_by_total_norm_fp32(params, max_norm=self.cfg.grad_clip, total_norm=grad_norm)
        self.optimizer.step_with_ready_grads()
        return grad_norm, False

    def _grad_norm(self) -> float:
        """Global L2 norm of the gradients, each counted once (megatron's own selection: no
        tensor-parallel replicas, no shared copies), accumulated in float64.

        megatron's ``get_grad_norm`` sums float32 per-tensor norms; on a CPU those drift by up
        to ~1e-4 for tensors of millions of elements, so the reported norm (and the clipping)
        would depend on how the layout shards the embedding. Float64 sums of squares do not.
        """
        total = torch.zeros((), dtype=torch.float64, device=parallel.device())
        groups = set()
        for sub in getattr(self.optimizer, "chained_optimizers", [self.optimizer]):
            for grad in sub.get_main_grads_for_grad_norm():
                for chunk in grad.detach().reshape(-1).split(1 << 22):
                    total += chunk.double().square().sum()
            groups.add(sub.get_grad_stats_parallel_group())
        (group,) = groups  # one dense model: every sub-optimiser reduces over the same ranks
        if group is not None and dist.get_world_size(group) > 1:
            dist.all_reduce(total, group=group)
        return math.sqrt(float(total))

    # ------------------------------------------------------------------ weights and checkpoints
    @in_device_scope
    def export_hf_weights(self) -> Iterator[tuple[str, torch.Tensor]]:
        """Full HF-named tensors on every rank (collective: all ranks must iterate to the end)."""
        offload.unpark(self._rollout_model, parallel.device())  # the refit writes into it next
        yield from weights.iter_hf_weights(self.megatron_model, self.arch)

    def trainer_memory(self) -> TrainerMemory:
        """Its own offload of the optimizer state and gradient buffer, for a colocated engine."""
        return offload.TrainingStateMemory(self.training_state)

    def rollout_module(self) -> Any:
        """A transformers model with the policy's weights *at the first call*, for the in-process
        rollout engine (the trainer refits it in place from ``export_hf_weights`` after every
        step). Lean: bf16 when training in bf16 on a GPU, built once, and parked on the CPU during
        logprob passes and updates (``offload_rollout_copy``). An explicit method, not a property:
        the first call is a collective that builds a full, unsharded copy (every rank must call it).
        The trained module is ``megatron_model``."""
        if self._rollout_model is None:
            from transformers import AutoModelForCausalLM

            dtype = torch.bfloat16 if self.bf16 else torch.float32
            with torch.device(parallel.device()):  # built where it runs: no second host copy
                hf_model = AutoModelForCausalLM.from_config(self.hf_config, dtype=dtype)
            targets = hf_model.state_dict()  # shares storage with the parameters
            seen, unexpected = set(), []
            with torch.no_grad():
                for name, tensor in self.export_hf_weights():  # one full tensor at a time
                    if name in targets and targets[name].shape == tensor.shape:
                        targets[name].copy_(tensor)
                        seen.add(name)
                    else:
                        unexpected.append(name)
            tied = {"lm_head.weight"} if self.arch.tied_embeddings else set()
            missing = [n for n in targets if n not in seen and n not in tied]
            if missing or unexpected:
                raise RuntimeError(f"exported weights do not fit {type(hf_model).__name__}: missing {missing[:3]}, "
                                   f"unexpected {unexpected[:3]}")
            hf_model.tie_weights()
            self._rollout_model = hf_model.eval()
        return self._rollout_model

    @in_device_scope
    def save(self, directory: str | os.PathLike) -> None:
        """Model, optimiser and step via ``dist_checkpointing`` (collective, atomic)."""
        state = {"step": self.step, "layout": str(self.layout), "schedule": dataclasses.asdict(self.schedule),
                 "model_type": self.arch.model_type}
        with self.training_state.on_gpu():
            checkpoint.save_checkpoint(directory, self.megatron_model, self.optimizer, state)

    @in_device_scope
    def load(self, directory: str | os.PathLike) -> None:
        with self.training_state.on_gpu():
            state = checkpoint.load_checkpoint(directory, self.megatron_model, self.optimizer)
        self.step = int(state["step"])

    def save_hf(self, directory: str | os.PathLike) -> None:
        """A Hugging Face directory of the current policy (collective: every rank calls it)."""
        checkpoint.save_hf_checkpoint(directory, self.export_hf_weights(), self.hf_config, self.tokenizer,
                                      self.generation_config)


def _finalize_without_token_scaling(finalize, model, num_tokens=None, **kwargs):
    """megatron's gradient finalisation (DP reduce, tied-embedding sync) without dividing by the
    schedule's token count: ``loss_fn`` already divided by the *global* counts."""
    return finalize(model, None, **kwargs)
