"""The ``hf`` policy backend: a transformers causal LM trained with plain PyTorch.

One process, or data-parallel SPMD under torchrun (every rank holds the whole model and its own
share of the batch). A step is: global normalisers (token/sequence counts of the whole step,
summed over ranks) -> per-micro-batch forward, loss, backward (gradients accumulate) -> gradient
all-reduce (sum: each rank's loss is already divided by the global count) -> clip -> AdamW.
So neither the micro-batch size nor the number of ranks changes the update.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import os
from pathlib import Path
from typing import Any, Iterator, Mapping

import torch
import torch.distributed as dist

from medssr_nemo import distributed
from medssr_nemo.artifacts import atomic_directory
from medssr_nemo.config.schema.policy import PolicyConfig
from medssr_nemo.models import load_causal_lm
from medssr_nemo.policy.batching import check_token_batch, micro_batches
from medssr_nemo.policy.interfaces import Colocatable, PolicyBackend, TokenBatch, TrainerMemory
from medssr_nemo.policy.logprobs import token_logprobs
from medssr_nemo.policy.loss_contract import LossFunction, StepLoss, global_normalisers
from medssr_nemo.policy.schedules import LRSchedule
from medssr_nemo.policy.trainer_memory import TorchTrainerMemory

# policy.options keys this backend understands, with their defaults
HF_OPTIONS: dict[str, int] = {
    "logprob_chunk_positions": 1024,   # (row, position) pairs per float32 softmax slice
    "logprob_micro_batch_size": 0,     # rows per no-grad logprob forward; 0 = micro_batch_size
}
MODEL_FILE = "model.safetensors"
OPTIMIZER_FILE = "optimizer.pt"
STATE_FILE = "backend_state.json"
_BUCKET_ELEMENTS = 1 << 25  # gradients are all-reduced in flat buckets of this many elements


def resolve_device(name: str) -> torch.device:
    """``auto`` -> this rank's GPU if CUDA is available, else the CPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("policy.device='cuda' but torch sees no CUDA device; use policy.device=auto or cpu")
        return torch.device("cuda", distributed.local_rank() % torch.cuda.device_count())
    return torch.device(name)


def _check_options(options: Mapping[str, Any]) -> dict[str, int]:
    unknown = sorted(set(options) - set(HF_OPTIONS))
    if unknown:
        raise ValueError(f"policy.options has keys the hf backend does not know: {unknown}; known: {sorted(HF_OPTIONS)}")
    merged = {**HF_OPTIONS, **options}
    for key, value in merged.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError(f"policy.options.{key}={value!r} must be an integer >= 0")
    if merged["logprob_chunk_positions"] < 1:
        raise ValueError("policy.options.logprob_chunk_positions must be >= 1")
    return merged


def _enable_activation_checkpointing(model: Any) -> None:
    """Recompute each decoder layer in the backward pass (transformers >= 5.2x renamed it)."""
    kwargs = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)


class HFPolicyBackend(PolicyBackend, Colocatable):
    """Train a transformers causal LM (``model``); an in-process rollout engine samples from that
    very module (``rollout_module``), so its refit copies nothing it does not already hold.

    Build it from ``model_ref`` (``load_causal_lm`` reference) or pass an already built
    ``model`` and ``tokenizer``. ``reference=False`` skips the frozen copy (kl_coef == 0).
    ``total_steps`` is needed by the cosine schedule. To resume, build it exactly as the first
    time (the reference is the initial policy), then ``load``.
    """

    def __init__(self, cfg: PolicyConfig, model_ref: str | None = None, *, model: Any = None,
                 tokenizer: Any = None, reference: bool = True, total_steps: int | None = None,
                 dtype: torch.dtype = torch.float32) -> None:
        distributed.init_distributed()
        self.cfg = cfg
        self.options = _check_options(cfg.options)
        self.device = resolve_device(cfg.device)
        if model is None:
            if model_ref is None:
                raise ValueError("HFPolicyBackend needs a model reference (model.path) or a built model")

            model, tokenizer = load_causal_lm(model_ref, dtype=dtype)
        elif tokenizer is None:
            raise ValueError("HFPolicyBackend: a built model needs its tokenizer too")
        self.model = model.to(self.device)
        self.tokenizer = tokenizer
        self._broadcast_weights()  # every rank starts from rank 0's weights
        self.model.eval()
        if cfg.gradient_checkpointing:
            _enable_activation_checkpointing(self.model)
        self.reference_model = None
        if reference:
            self.reference_model = copy.deepcopy(self.model).eval().requires_grad_(False)
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(self.params, lr=cfg.lr, betas=(cfg.betas[0], cfg.betas[1]),
                                           eps=cfg.adam_eps, weight_decay=cfg.weight_decay)
        self.schedule = LRSchedule(cfg.lr, cfg.schedule, cfg.warmup_steps, total_steps, cfg.min_lr_ratio)
        self.step = 0  # optimiser steps taken

    # ------------------------------------------------------------------ forward passes
    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.device.type == "cuda" and self.cfg.bf16:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _to_device(self, batch: Mapping[str, Any]) -> dict[str, Any]:
        return {k: v.to(self.device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}

    def _forward_logprobs(self, model: Any, part: Mapping[str, Any], temperature: float,
                          entropy: str = "off") -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logprobs [b, T]; only the positions from the first response token of the micro-batch
        on get logits (prompts are most of a row, and the vocabulary projection and its softmax
        are most of the cost), the rest hold 0."""
        input_ids = part["input_ids"]
        width = input_ids.shape[1]
        first = 1
        if "response_mask" in part:
            columns = part["response_mask"].bool().any(0).nonzero()
            first = max(1, int(columns.min())) if columns.numel() else width - 1
        keep = width - first + 1          # logits at first-1 predict the first response token
        with self._autocast():
            logits = model(input_ids=input_ids, attention_mask=part["attention_mask"],
                           use_cache=False, logits_to_keep=keep).logits
        kept_lp, kept_ent = token_logprobs(logits, input_ids[:, width - keep:], temperature,
                                           self.options["logprob_chunk_positions"], entropy)  # type: ignore[arg-type]
        if keep == width:
            return kept_lp, kept_ent
        pad = kept_lp.new_zeros((input_ids.shape[0], width - keep))
        logprobs = torch.cat([pad, kept_lp], dim=1)
        ent = None if kept_ent is None else torch.cat([pad, kept_ent], dim=1)
        return logprobs, ent

    @torch.no_grad()
    def _logprobs_with(self, model: Any, batch: TokenBatch, temperature: float) -> torch.Tensor:
        check_token_batch(batch, ("input_ids", "attention_mask"))
        out_device = batch["input_ids"].device
        on_device = self._to_device(batch)
        rows, length = on_device["input_ids"].shape
        result = torch.zeros((rows, length), dtype=torch.float32, device=self.device)
        size = self.options["logprob_micro_batch_size"] or self.cfg.micro_batch_size
        for start, part in zip(range(0, rows, size), micro_batches(on_device, size)):
            logprobs, _ = self._forward_logprobs(model, part, temperature)
            result[start:start + logprobs.shape[0], :logprobs.shape[1]] = logprobs
        # padding holds 0, whatever micro-batch width it fell into
        result = torch.where(on_device["attention_mask"].bool(), result, torch.zeros_like(result))
        return result.to(out_device)

    def logprobs(self, batch: TokenBatch, temperature: float = 1.0) -> torch.Tensor:
        self.model.eval()
        return self._logprobs_with(self.model, batch, temperature)

    def reference_logprobs(self, batch: TokenBatch, temperature: float = 1.0) -> torch.Tensor:
        if self.reference_model is None:
            raise RuntimeError("this hf backend was built without a reference policy (reference=False, "
                               "as for grpo.kl_coef=0); build it with reference=True to get reference logprobs")
        return self._logprobs_with(self.reference_model, batch, temperature)

    # ------------------------------------------------------------------ training
    def _data_parallel_group(self) -> Any:
        return dist.group.WORLD if distributed.world_size() > 1 else None

    def train_step(self, batch: TokenBatch, loss_fn: LossFunction) -> dict[str, float]:
        """One AdamW step on ``batch`` (this rank's share), with the logits divided by
        ``loss_fn.temperature`` and per-token entropy as ``loss_fn.entropy`` declares."""
        check_token_batch(batch, ("input_ids", "attention_mask", "response_mask"))
        full = self._to_device(batch)
        step = StepLoss(loss_fn, global_normalisers(full["response_mask"], self._data_parallel_group(), self.device),
                        self.device)
        self.model.train()  # enables gradient checkpointing in transformers
        self.optimizer.zero_grad(set_to_none=True)
        for part in micro_batches(full, self.cfg.micro_batch_size):
            logprobs, entropy = self._forward_logprobs(self.model, part, loss_fn.temperature, loss_fn.entropy)
            step(logprobs, part, entropy).backward()
        self.model.eval()
        self._all_reduce_gradients()
        loss_total = distributed.all_reduce_sum(step.loss_total)
        grad_norm = self._clip_gradients()
        lr = self.schedule(self.step)
        skipped = not torch.isfinite(grad_norm)
        if not skipped:  # a nan/inf gradient would poison the weights and Adam's moments
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            self.optimizer.step()
            self.step += 1
        self.optimizer.zero_grad(set_to_none=True)
        return step.step_metrics(float(loss_total), float(grad_norm), lr, skipped,
                                 step.metrics.reduce(self._data_parallel_group(), self.device))

    def _all_reduce_gradients(self) -> None:
        """Sum gradients over ranks, flattened into buckets to keep the number of calls small."""
        if distributed.world_size() == 1:
            return
        for p in self.params:
            if p.grad is None:  # a parameter this rank's data did not reach still takes part
                p.grad = torch.zeros_like(p)
        by_dtype: dict[torch.dtype, list[torch.Tensor]] = {}
        for p in self.params:
            by_dtype.setdefault(p.grad.dtype, []).append(p.grad)
        for grads in by_dtype.values():
            bucket: list[torch.Tensor] = []
            filled = 0
            for i, grad in enumerate(grads):
                bucket.append(grad)
                filled += grad.numel()
                if filled >= _BUCKET_ELEMENTS or i == len(grads) - 1:
                    flat = torch.cat([g.reshape(-1) for g in bucket])
                    distributed.all_reduce_sum(flat)
                    for g, reduced in zip(bucket, flat.split([g.numel() for g in bucket])):
                        g.copy_(reduced.view_as(g))
                    bucket, filled = [], 0

    def _clip_gradients(self) -> torch.Tensor:
        """Clip to ``grad_clip`` (0 = off); returns the norm before clipping."""
        grads = [p.grad for p in self.params if p.grad is not None]
        norm = torch.nn.utils.get_total_norm(grads, norm_type=2.0)
        if self.cfg.grad_clip > 0 and torch.isfinite(norm):
            torch.nn.utils.clip_grads_with_norm_(self.params, self.cfg.grad_clip, norm)
        return norm.detach().cpu()

    def _broadcast_weights(self) -> None:
        if distributed.world_size() == 1:
            return
        with torch.no_grad():
            for tensor in [*self.model.parameters(), *self.model.buffers()]:
                distributed.broadcast_(tensor.data)

    # ------------------------------------------------------------------ weights and checkpoints
    def rollout_module(self) -> Any:
        return self.model

    def trainer_memory(self) -> TrainerMemory:
        """Its AdamW state and gradients, which a colocated engine moves aside during refits."""
        return TorchTrainerMemory(self.optimizer, self.model)

    def export_hf_weights(self) -> Iterator[tuple[str, torch.Tensor]]:
        for name, tensor in self.model.state_dict().items():
            yield name, tensor.detach()

    def save(self, directory: str | os.PathLike) -> None:
        """Write weights (safetensors), AdamW state and step; collective (every rank calls it,
        rank 0 writes). The directory appears only when complete."""
        from safetensors.torch import save_model

        final = Path(directory)
        if distributed.is_main():
            with atomic_directory(final) as tmp:
                save_model(self.model, str(tmp / MODEL_FILE))
                torch.save(self.optimizer.state_dict(), tmp / OPTIMIZER_FILE)
                state = {"step": self.step, "schedule": dataclasses.asdict(self.schedule),
                         "world_size": distributed.world_size()}
                (tmp / STATE_FILE).write_text(json.dumps(state, indent=2))
        distributed.barrier()

    def load(self, directory: str | os.PathLike) -> None:
        from safetensors.torch import load_model

        directory = Path(directory)
        for name in (MODEL_FILE, OPTIMIZER_FILE, STATE_FILE):
            if not (directory / name).exists():
                raise FileNotFoundError(f"{directory} is not an hf policy checkpoint: {name} is missing")
        missing, unexpected = load_model(self.model, str(directory / MODEL_FILE), strict=False, device=str(self.device))
        if missing or unexpected:
            raise ValueError(f"{directory / MODEL_FILE} does not fit this model: missing {sorted(missing)[:5]}, "
                             f"unexpected {sorted(unexpected)[:5]}")
        # Loaded on the CPU; load_state_dict moves each state tensor next to its parameter.
        self.optimizer.load_state_dict(torch.load(directory / OPTIMIZER_FILE, map_location="cpu", weights_only=True))
        self.step = int(json.loads((directory / STATE_FILE).read_text())["step"])

    def save_hf(self, directory: str | os.PathLike) -> None:
        """A Hugging Face directory (config, generation config, tokenizer, safetensors); rank 0."""
        if not distributed.is_main():
            return
        with atomic_directory(directory) as tmp:
            self.model.save_pretrained(tmp, safe_serialization=True)
            self.tokenizer.save_pretrained(tmp)
