"""What the megatron backend keeps off the GPU between uses, so that one GPU holds a phase's
working set and not every phase's at once (the memory plan, medssr_nemo/launch/memory.py):

* the optimizer state (fp32 master weights, Adam moments) goes to the CPU and the gradient
  buffer is freed while the rollout engine generates (megatron-core's ``offload_to_cpu`` /
  ``offload_grad_buffers``, written for RL training); both come back for the update;
* the frozen KL reference waits on the CPU and comes in for its logprob pass only;
* the in-process engine's copy of the policy waits on the CPU during the logprob passes and the
  update, and comes back for the refit.

On a CPU there is nothing to free: every function here does nothing unless its tensors are on
a CUDA device.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

import torch

from medssr_nemo.policy.interfaces import TrainerMemory


def _cuda() -> bool:
    return torch.cuda.is_available()


class TrainingState:
    """Optimizer state and gradient buffer: on the GPU for the update only (when enabled)."""

    def __init__(self, model: Any, optimizer: Any, enabled: bool) -> None:
        self.model, self.optimizer = model, optimizer
        self.enabled = enabled and _cuda()
        self.offloaded = False

    def offload(self) -> None:
        if self.enabled and not self.offloaded:
            self.optimizer.offload_to_cpu()
            self.model.offload_grad_buffers()
            self.offloaded = True

    def restore(self) -> None:
        if self.offloaded:
            self.optimizer.restore_from_cpu()
            self.model.restore_grad_buffers()
            self.offloaded = False

    def held(self) -> dict[str, int]:
        """Bytes now held on the model's device: the gradient buffers' storage (``offload_grad_buffers``
        shrinks it to 0, so this is measured, not inferred from a flag) and the optimizer's state
        tensors and fp32 master weights still on that device (``offload_to_cpu`` moves them off)."""
        buffers = [*getattr(self.model, "buffers", []), *getattr(self.model, "expert_parallel_buffers", [])]
        grads = sum(b.grad_data.untyped_storage().nbytes() for b in buffers if getattr(b, "grad_data", None) is not None)
        device = next(self.model.parameters()).device
        return {"grads": grads, "optimizer": _optimizer_bytes(self.optimizer, device)}

    @contextlib.contextmanager
    def on_gpu(self) -> Iterator[None]:
        """Resident inside the block (update, checkpoint save/load), offloaded again after."""
        self.restore()
        try:
            yield
        finally:
            self.offload()


def _optimizer_bytes(optimizer: Any, device: torch.device) -> int:
    """State and master-weight bytes on ``device`` of a megatron optimizer (chained or not)."""
    seen: set[int] = set()
    total = 0
    for inner in getattr(optimizer, "chained_optimizers", [optimizer]):
        torch_optimizer = getattr(inner, "optimizer", None)
        if torch_optimizer is None:
            continue
        tensors = [v for state in torch_optimizer.state.values() for v in state.values() if isinstance(v, torch.Tensor)]
        tensors += [p for group in getattr(inner, "fp32_from_float16_groups", []) for p in group]
        for tensor in tensors:
            if tensor.device == device and tensor.dim() > 0 and id(tensor) not in seen:
                seen.add(id(tensor))
                total += tensor.numel() * tensor.element_size()
    return total


class TrainingStateMemory(TrainerMemory):
    """The megatron backend's ``TrainerMemory`` (``Colocatable.trainer_memory``): a colocated
    engine's refit asks the training state to offload; the backend's update brings it back itself
    (``TrainingState.on_gpu``), so ``restore`` has nothing to do and nothing is moved twice."""

    def __init__(self, state: TrainingState) -> None:
        self.state = state

    def release(self) -> None:
        self.state.offload()

    def restore(self) -> None:
        return None

    def held(self) -> dict[str, int]:
        """The backend's own measure (``TrainingState.held``), so the ledger shows bytes here too."""
        return self.state.held()

    def note(self) -> str:
        return f"backend-managed, offloaded={self.state.offloaded}"


def park(module: Any) -> None:
    """Move a module's tensors to the CPU (in place: whoever holds the module keeps it)."""
    if module is not None and _cuda() and next(module.parameters()).is_cuda:
        module.to("cpu")
        torch.cuda.empty_cache()


def unpark(module: Any, device: Any) -> None:
    if module is not None and _cuda() and not next(module.parameters()).is_cuda:
        module.to(device)


@contextlib.contextmanager
def visiting(module: Any, device: Any, enabled: bool) -> Iterator[Any]:
    """``module`` on ``device`` inside the block and back on the CPU after (when enabled)."""
    if not enabled:
        yield module
        return
    unpark(module, device)
    try:
        yield module
    finally:
        park(module)
