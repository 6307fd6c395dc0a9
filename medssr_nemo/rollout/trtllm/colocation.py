"""Sharing GPUs between the trainer and a colocated engine: the order memory changes hands, and a
ledger of what each phase holds.

The order (``TensorRTLLMEngine`` drives it):

1. after rollouts the engine sleeps (every memory tag: weights and KV cache), then the trainer's
   optimizer state comes back to the GPU for the update;
2. before the refit the trainer frees its gradients and moves its optimizer state to host memory;
3. the engine wakes its WEIGHT tags only, and the refit writes the new weights;
4. the engine wakes its KV cache last, when the trainer holds the least.

Step 2 is the policy's declared ``TrainerMemory`` (``policy/interfaces.py``), handed over once by
the trainer (``Colocatable.trainer_memory``): on the ``hf`` backend ``TorchTrainerMemory``
(``policy/trainer_memory.py``, a torch optimizer), on the ``megatron`` backend
``TrainingStateMemory`` (``policy/megatron/offload.py``: the backend keeps its optimizer state on
the CPU and its gradient buffer freed except inside the update, so the engine only asks it to
offload and never moves the same tensors twice).
``MemoryLedger`` logs one line per phase with the tensor bytes each side holds on the GPU, what
each engine worker's GPU holds (measured inside the worker, ``medssr_memory``), and
``torch.cuda.memory_allocated`` when CUDA is there.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any, Sequence

import torch

from medssr_nemo.policy.interfaces import TrainerMemory

log = logging.getLogger(__name__)
MIB = 2**20


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
        trainer_text = (" ".join(f"{k}={v / MIB:.1f}MiB" for k, v in held.items())
                        or (trainer.note() if trainer is not None else "unmanaged"))
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
