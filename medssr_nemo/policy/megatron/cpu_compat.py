"""Run megatron-core on a machine without a CUDA device (tests, laptops); the ONE place that does.

megatron-core assumes a GPU in a handful of places that have nothing to do with the maths:

1. ``torch.cuda.current_device()`` names the device of new buffers (rotary tables, DDP grad
   buffers, RNG trackers), ``torch.cuda.synchronize()`` fences timers and checkpoint writes, and
   activation recomputation saves ``torch.cuda.get_rng_state()`` to replay dropout;
2. small bookkeeping tensors are created with a hard-coded ``device="cuda"`` (the pipeline
   schedules' token counter, the optimiser's found-inf flag, grad-norm buffers, the default
   causal mask);
3. the optimisers check ``param.type() == "torch.cuda.FloatTensor"`` to decide how to keep master
   weights.

On a machine with no CUDA device every one of these raises, so bypassing them changes nothing that
would otherwise have worked. Here the CPU plays the part of "the CUDA device":

* ``apply()`` (once per process) makes ``torch.cuda.current_device()`` return the CPU device,
  ``torch.cuda.synchronize()`` a no-op and ``torch.cuda.get_rng_state()`` an empty state (there
  is no CUDA generator to save; setting a CUDA RNG state is already lazy and never runs);
* ``device_scope()`` (around every call into megatron-core) is a ``TorchFunctionMode`` that sends
  factory calls with ``device="cuda"`` to the CPU, makes ``Tensor.cuda()`` a no-op and reports a
  CPU tensor's ``type()`` under its CUDA name.

With a CUDA device both are no-ops: library code calls the CUDA APIs as usual. One limit: autograd
runs backward passes without the caller's ``TorchFunctionMode``, so code that megatron re-runs in
a backward pass (activation recomputation) must not create ``device="cuda"`` tensors; the backend
therefore hands the attention its causal mask instead of letting it build one.

Separately, without TransformerEngine/apex (always the case on a CPU) megatron's distributed
optimiser wraps torch's AdamW, and its checkpoint code mishandles AdamW's per-parameter ``step``
in 0.16: ``prepare_optimizer_for_load`` and ``finish_optimizer_load`` fix this per optimiser
instance (nothing global), and do nothing when TE or apex provide the optimiser.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Any, Iterator

import torch
from torch.overrides import TorchFunctionMode

_applied = False


def needed() -> bool:
    """True when there is no CUDA device, i.e. when the bypasses must be used."""
    return not torch.cuda.is_available()


def apply() -> None:
    """Patch ``torch.cuda.current_device``/``synchronize``/``get_rng_state`` for this process
    (idempotent)."""
    global _applied
    if _applied or not needed():
        return
    torch.cuda.current_device = lambda: torch.device("cpu")  # type: ignore[assignment]
    torch.cuda.synchronize = lambda device=None: None  # type: ignore[assignment]
    no_state = lambda device="cuda": torch.empty(0, dtype=torch.uint8)  # noqa: E731
    torch.cuda.get_rng_state = no_state  # type: ignore[assignment]
    torch.cuda.random.get_rng_state = no_state  # type: ignore[assignment]
    _applied = True


def _is_cuda(device: Any) -> bool:
    if isinstance(device, int):  # an int device is a CUDA ordinal
        return True
    if isinstance(device, str):
        return device.startswith("cuda")
    return isinstance(device, torch.device) and device.type == "cuda"


class _CpuAsCudaMode(TorchFunctionMode):
    """Sends ``device="cuda"`` to the CPU and lets CPU tensors pass megatron's CUDA type checks."""

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: D401
        kwargs = kwargs or {}
        if "device" in kwargs and _is_cuda(kwargs["device"]):
            kwargs = {**kwargs, "device": "cpu"}
        if func is torch.Tensor.cuda:
            return args[0]
        if func is torch.Tensor.type and len(args) == 1 and not kwargs:
            name = func(*args)
            return name.replace("torch.", "torch.cuda.", 1) if not name.startswith("torch.cuda.") else name
        if func is torch.Tensor.to and args[1:] and _is_cuda(args[1]):
            args = (args[0], "cpu", *args[2:])
        return func(*args, **kwargs)


def device_scope() -> contextlib.AbstractContextManager:
    """Context for calls into megatron-core: the CPU-as-CUDA mode without CUDA, else nothing."""
    if not needed():
        return contextlib.nullcontext()
    apply()
    return _CpuAsCudaMode()


def in_device_scope(method):
    """Decorator: run ``method`` (and, for generators, every resumption) inside ``device_scope``."""
    import inspect

    if inspect.isgeneratorfunction(method):
        @functools.wraps(method)
        def generator(*args: Any, **kwargs: Any) -> Iterator[Any]:
            inner = method(*args, **kwargs)
            while True:
                with device_scope():
                    try:
                        item = next(inner)
                    except StopIteration:
                        return
                yield item

        return generator

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with device_scope():
            return method(*args, **kwargs)

    return wrapper


def _uses_torch_adam() -> bool:
    from megatron.core.optimizer import distrib_optimizer

    return not distrib_optimizer.HAVE_APEX_OR_TE


def prepare_optimizer_for_load(optimizer) -> None:
    """Let megatron's distributed optimiser, when it wraps torch's AdamW, load a checkpoint.

    1. A fresh AdamW has no state until its first step, yet building the load template reads the
       step count from that state: give it the zero state AdamW starts from (loading replaces it).
    2. Loading copies every state entry of the checkpoint into the matching live entry, but the
       checkpoint (rightly) leaves out AdamW's ``step``, which megatron restores separately: the
       copy raises ``KeyError: 'step'``. Hide ``step`` from that copy, on this instance only.
    """
    for sub, inner in _torch_adams(optimizer):
        for group in inner.param_groups:
            for param in group["params"]:
                if not inner.state[param]:
                    inner.state[param] = {"step": torch.tensor(0.0), "exp_avg": torch.zeros_like(param),
                                          "exp_avg_sq": torch.zeros_like(param)}
        if getattr(sub, "_medssr_step_safe", False) or not hasattr(sub, "_set_main_param_and_optimizer_states"):
            continue
        original = sub._set_main_param_and_optimizer_states

        def set_states(model_param, tensors, _sub=sub, _original=original, _inner=inner):
            group_index, group_order = _sub.model_param_group_index_map[model_param]
            state = _inner.state[_inner.param_groups[group_index]["params"][group_order]]
            step = state.pop("step", None)
            try:
                _original(model_param, tensors)
            finally:
                if step is not None:
                    state["step"] = step

        sub._set_main_param_and_optimizer_states = set_states
        sub._medssr_step_safe = True


def _torch_adams(optimizer) -> list:
    """(megatron optimizer, its torch Adam/AdamW) pairs, when megatron runs on torch's Adam."""
    if not _uses_torch_adam():
        return []
    pairs = []
    for sub in getattr(optimizer, "chained_optimizers", [optimizer]):
        inner = getattr(sub, "optimizer", None)
        if isinstance(inner, (torch.optim.Adam, torch.optim.AdamW)):
            pairs.append((sub, inner))
    return pairs


def finish_optimizer_load(optimizer) -> None:
    """After a load, give every parameter its own AdamW ``step`` tensor.

    megatron restores the step count by putting *one* tensor into every parameter's state;
    AdamW increments each parameter's step in place, so a shared tensor would advance once per
    parameter per update and every later bias correction would be wrong (a resumed run would
    drift from the uninterrupted one).
    """
    for _sub, inner in _torch_adams(optimizer):
        for state in inner.state.values():
            if isinstance(state.get("step"), torch.Tensor):
                state["step"] = state["step"].clone()
