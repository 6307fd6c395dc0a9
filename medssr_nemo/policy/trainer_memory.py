"""``TrainerMemory`` for a torch optimizer: what the ``hf`` backend hands a colocated engine
(``policy/interfaces.py`` ``Colocatable.trainer_memory``). Adam's two moments are 2/3 of the static
training state, so moving them to host memory during a refit is most of what there is to free."""

from __future__ import annotations

from typing import Iterator

import torch

from medssr_nemo.policy.interfaces import TrainerMemory


def _optimizer_tensors(optimizer: torch.optim.Optimizer) -> Iterator[tuple[dict, str, torch.Tensor]]:
    for state in optimizer.state.values():
        for key, value in state.items():
            if isinstance(value, torch.Tensor) and value.dim() > 0:
                yield state, key, value


class TorchTrainerMemory(TrainerMemory):
    """Offloads a torch optimizer's state to (pinned, with CUDA) host memory and frees gradients."""

    def __init__(self, optimizer: torch.optim.Optimizer, module: torch.nn.Module | None = None) -> None:
        self.optimizer = optimizer
        self.module = module
        self.offloaded = False
        self._devices: dict[tuple[int, str], torch.device] = {}

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
