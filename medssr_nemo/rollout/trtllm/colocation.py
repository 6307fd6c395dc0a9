"""Sharing GPUs between the trainer and a colocated engine: the order memory changes hands, and a
ledger of what each phase holds.

The order (``TensorRTLLMEngine`` drives it):

1. after rollouts the engine sleeps (every memory tag: weights and KV cache), then the trainer's
   optimizer state comes back to the GPU for the update;
2. before the refit the trainer frees its gradients and moves its optimizer state to host memory;
3. the engine wakes its WEIGHT tags only, and the refit writes the new weights;
4. the engine wakes its KV cache last, when the trainer holds the least.

``TorchTrainerMemory`` does step 2 for a torch optimizer (Adam's two moments are 2/3 of the
static training state). A policy backend that manages this itself (the megatron backend's
``training_state``: optimizer state on the CPU and gradient buffer freed except inside the update,
``policy/megatron/offload.py``) is driven through ``BackendTrainerMemory`` instead, so the two never
move the same tensors.
``MemoryLedger`` logs one line per phase with the tensor bytes each side holds on the GPU, what
each engine worker's GPU holds (measured inside the worker, ``medssr_memory``), and
``torch.cuda.memory_allocated`` when CUDA is there.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any, Iterator, Protocol, Sequence

import torch

log = logging.getLogger(__name__)
MIB = 2**20


class TrainerMemory(Protocol):
    def release(self) -> None:
        """Free gradients and move optimizer state off the GPU."""

    def restore(self) -> None:
        """Bring optimizer state back for the next update."""

    def held(self) -> dict[str, int]:
        """Bytes of each kind of training state now on the accelerator."""


def _optimizer_tensors(optimizer: torch.optim.Optimizer) -> Iterator[tuple[dict, str, torch.Tensor]]:
    for state in optimizer.state.values():
        for key, value in state.items():
            if isinstance(value, torch.Tensor) and value.dim() > 0:
                yield state, key, value


class TorchTrainerMemory:
    """Offloads a torch optimizer's state to (pinned, with CUDA) host memory and frees gradients."""

    def __init__(self, optimizer: torch.optim.Optimizer, module: torch.nn.Module | None = None) -> None:
        self.optimizer = optimizer
        self.module = module
        self.offloaded = False
        self._devices: dict[tuple[int, str], torch.device] = {}

    @classmethod
    def of_policy(cls, policy: Any) -> "TrainerMemory | None":
        """For a policy backend: its own offload (``training_state``) when it has one, else its torch
        optimizer (``policy.optimizer``); None when there is nothing to manage."""
        state = getattr(policy, "training_state", None)
        if state is not None and hasattr(state, "offload"):
            return BackendTrainerMemory(state)
        optimizer = getattr(policy, "optimizer", None)
        if not isinstance(optimizer, torch.optim.Optimizer):
            return None
        module = getattr(policy, "model", None)
        return cls(optimizer, module if isinstance(module, torch.nn.Module) else None)

    def _params(self) -> Iterator[torch.nn.Parameter]:
        if self.module is not None:
            yield from self.module.parameters()
        else:
            for group in self.optimizer.param_groups:
                yield from group["params"]

    def release(self) -> None:
        for param in self._params():
            param.grad = None
        if self.offloaded:
            return
        pin = torch.cuda.is_available()
        for state, key, value in _optimizer_tensors(self.optimizer):
            self._devices[(id(state), key)] = value.device
            if value.device.type != "cpu":
                state[key] = value.to("cpu", non_blocking=True).pin_memory() if pin else value.to("cpu")
        self.offloaded = True

    def restore(self) -> None:
        if not self.offloaded:
            return
        for state, key, value in _optimizer_tensors(self.optimizer):
            device = self._devices.get((id(state), key), value.device)
            if device != value.device:
                state[key] = value.to(device, non_blocking=True)
        self._devices.clear()
        self.offloaded = False

    def held(self) -> dict[str, int]:
        optimizer = 0 if self.offloaded else sum(v.numel() * v.element_size() for _, _, v in _optimizer_tensors(self.optimizer))
        grads = sum(p.grad.numel() * p.grad.element_size() for p in self._params() if p.grad is not None)
        params = sum(p.numel() * p.element_size() for p in self._params())
        return {"params": params, "grads": grads, "optimizer": optimizer}


class BackendTrainerMemory:
    """A backend that moves its own optimizer state and gradient buffers (``offload()``, and back
    inside its update): a refit asks it to offload; it restores itself for the update."""

    def __init__(self, state: Any) -> None:
        self.state = state

    def release(self) -> None:
        self.state.offload()

    def restore(self) -> None:
        return None   # the backend's update brings its state back (training_state.on_gpu())

    def held(self) -> dict[str, int]:
        """The backend's own measure (``TrainingState.held``: gradient buffer and optimizer bytes
        on the device), so the ledger shows bytes in this mode too."""
        held = getattr(self.state, "held", None)
        return dict(held()) if callable(held) else {}

    def note(self) -> str:
        return f"backend-managed, offloaded={bool(getattr(self.state, 'offloaded', False))}"


@dataclasses.dataclass
class LedgerRow:
    phase: str
    engine_awake: tuple[str, ...]
    trainer: dict[str, int]
    device_allocated: int | None
    # one entry per engine worker (``medssr_memory`` over the engine's RPC): rank, allocated,
    # reserved, device_used; empty on ranks that do not lead an engine
    engine_workers: tuple[dict[str, Any], ...] = ()


class MemoryLedger:
    """One row per phase: what the trainer and the engine hold. Logged as it is recorded."""

    def __init__(self) -> None:
        self.rows: list[LedgerRow] = []

    def record(self, phase: str, engine_awake: tuple[str, ...], trainer: TrainerMemory | None,
               engine_workers: Sequence[dict[str, Any]] = ()) -> LedgerRow:
        held = trainer.held() if trainer is not None else {}
        allocated = torch.cuda.memory_allocated() if torch.cuda.is_available() else None
        row = LedgerRow(phase, tuple(engine_awake), held, allocated, tuple(dict(w) for w in engine_workers))
        self.rows.append(row)
        note = getattr(trainer, "note", None)
        trainer_text = (" ".join(f"{k}={v / MIB:.1f}MiB" for k, v in held.items())
                        or (note() if callable(note) else "unmanaged"))
        gpu = "n/a (no CUDA)" if allocated is None else f"{allocated / MIB:.1f}MiB"
        awake = ",".join(engine_awake) if engine_awake else "nothing"
        workers = "; ".join(_worker_text(w) for w in row.engine_workers) or "not measured here"
        log.info("memory ledger | %-28s | trainer %s | engine awake: %s | engine workers: %s | allocated here: %s",
                 phase, trainer_text, awake, workers, gpu)
        return row

    def phases(self) -> list[str]:
        return [row.phase for row in self.rows]


def _worker_text(worker: dict[str, Any]) -> str:
    fields = ("allocated", "reserved", "device_used")
    sizes = " ".join(f"{k}={'n/a' if worker.get(k) is None else f'{worker[k] / MIB:.1f}MiB'}" for k in fields)
    return f"rank {worker.get('rank', '?')} {sizes}"
