"""GPU speed settings of the megatron backend: fused kernels, sequence parallelism, overlapped
gradient reduction and the gradient-reduce precision, decided in one place from what the
machine has (CUDA, TransformerEngine) and ``policy.options``.

On a CPU everything here is off: the fused kernels are CUDA-only and gloo has no
reduce-scatter for sequence parallelism. Nothing in it changes the maths beyond rounding.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

FUSION_FLAGS = ("bias_activation_fusion", "bias_dropout_fusion", "apply_rope_fusion", "masked_softmax_fusion",
                "gradient_accumulation_fusion")


@dataclasses.dataclass(frozen=True)
class SpeedSettings:
    fusions: bool                 # the FUSION_FLAGS of TransformerConfig
    sequence_parallel: bool       # split norms/dropout activations over TP (needs TP > 1)
    overlap_grad_reduce: bool     # reduce-scatter gradient buckets while the backward pass runs
    overlap_param_gather: bool
    grad_reduce_in_fp32: bool

    def transformer_overrides(self) -> dict[str, Any]:
        return {**{flag: self.fusions for flag in FUSION_FLAGS}, "sequence_parallel": self.sequence_parallel}

    def ddp_overrides(self) -> dict[str, Any]:
        return {"overlap_grad_reduce": self.overlap_grad_reduce, "overlap_param_gather": self.overlap_param_gather,
                "grad_reduce_in_fp32": self.grad_reduce_in_fp32}


def _switch(value: str, auto: bool, key: str, available: bool, why: str) -> bool:
    if value == "on" and not available:
        raise RuntimeError(f"policy.options.{key}=on needs {why}; use auto")
    return {"on": True, "off": False, "auto": auto}[value]


def speed_settings(options: Mapping[str, Any], *, cuda: bool, transformer_engine: bool,
                   tensor_parallel_size: int) -> SpeedSettings:
    """What to turn on for ``options`` (``gpu_fusions``, ``sequence_parallel``,
    ``grad_reduce_dtype``) on a machine with or without CUDA and TransformerEngine.

    Parameter all-gather is not overlapped: every GRPO step ends with a refit that reads all
    weights, so no later forward pass could hide the gather (megatron would defer it to the next
    forward's pre-hooks and the refit would read stale shards).
    """
    gpu = cuda and transformer_engine
    fusions = _switch(options.get("gpu_fusions", "auto"), gpu, "gpu_fusions", gpu, "CUDA and TransformerEngine")
    sp_possible = cuda and tensor_parallel_size > 1
    sequence_parallel = _switch(options.get("sequence_parallel", "auto"), sp_possible, "sequence_parallel",
                                sp_possible, "CUDA and model.tensor_parallel_size > 1")
    return SpeedSettings(fusions=fusions, sequence_parallel=sequence_parallel, overlap_grad_reduce=fusions,
                         overlap_param_gather=False,
                         grad_reduce_in_fp32=options.get("grad_reduce_dtype", "fp32") != "bf16")
