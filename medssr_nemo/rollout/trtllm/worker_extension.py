"""Runs INSIDE each TensorRT-LLM GPU worker: the receiving half of the refit protocol.

TensorRT-LLM mixes this class into its worker class when the ``LLM`` is built with
``orchestrator_type="ray", ray_worker_extension_cls=WORKER_EXTENSION`` (see ``api.py``):
``RayWorkerWrapper._inject_worker_extension`` builds ``type(..., (RayGPUWorker, extension), ...)``
and REFUSES any non-dunder attribute of the extension that ``RayGPUWorker`` already has
(``tensorrt_llm/executor/ray_gpu_worker.py``). So everything added here is named ``medssr_*`` or
``_medssr_*``, and ``sleep``/``wakeup`` are NOT defined here: they are ``RayGPUWorker``'s own
(control actions, refused unless the LLM was built with sleep enabled). The engine reaches all of
them through ``LLM._collective_rpc(name, args=...)``.

It extends ``tensorrt_llm.llmapi.rlhf_utils.WorkerExtension`` (``update_weights(ipc_handles)``,
``reset_prefix_cache()``; the worker sets ``self.engine`` (the PyExecutor), ``self.device_id`` and
``self.global_rank``) with:

- bookkeeping of which weight version the worker holds and how many tensors it received;
- ``medssr_receive_bucket``: the broadcast path for rollout GPUs separate from training;
- ``medssr_finish_refit``: version, tensor count and checksums of the parameters the engine HOLDS
  (fused and sharded names, see ``fused_names.py``) for the trainer to verify;
- ``medssr_memory``: what this worker's GPU holds, for the colocation memory ledger.

Internals this touches, as TensorRT-LLM's own ``update_weights`` does (``rlhf_utils.py``):
``self.engine.model_engine.model`` and its modules' ``pre_reload_weights`` hooks, and
``self.engine.model_engine.model_loader.reload(model, weights, allow_partial_loading=True)``.
NEVER RUN inside a real TensorRT-LLM worker; exercised only with ``tests/fakes/tensorrt_llm``.
"""

from __future__ import annotations

import base64
import inspect
from typing import Any

import torch
from tensorrt_llm.llmapi.rlhf_utils import WorkerExtension

from medssr_nemo.rollout.trtllm.checksum import tensor_checksum
from medssr_nemo.rollout.trtllm.packing import unpack
from medssr_nemo.rollout.trtllm.refit import broadcast_buffer, make_refit_group, meta_from_tuples


# What a bucket's pickle may import: torch's CUDA-IPC rebuild function and the types in its
# arguments (``reduce_tensor``'s layout), for unpicklers that take an allow-list.
HANDLE_IMPORTS: dict[str, list[str]] = {
    "torch.multiprocessing.reductions": ["rebuild_cuda_tensor"],
    "torch": ["Tensor", "Size", "device", "bfloat16", "float16", "float32", "float64", "int64", "int32",
              "int8", "uint8", "bool"],
    "torch.storage": ["UntypedStorage", "TypedStorage"],
}
# ... and, for unpicklers that take a deny-list, what TensorRT-LLM's own update_weights refuses
# plus the usual code-execution entry points (a deny-list cannot be complete; the allow-list is).
HANDLE_DENIED: dict[str, list[str]] = {
    "torch.storage": ["_load_from_bytes"], "torch.hub": ["_load_local"], "torch": ["save", "load"],
    "torch.serialization": ["save", "load"], "builtins": ["eval", "exec", "compile", "__import__", "open"],
    "os": ["system", "popen", "execv", "execvp"], "posix": ["system", "popen", "execv"],
    "subprocess": ["run", "call", "check_call", "check_output", "Popen"],
}


def restricted_loads(raw: bytes) -> Any:
    """``tensorrt_llm.serialization.loads`` with the keyword the installed version takes: an
    allow-list (``approved_imports``) in some versions, a deny-list (``disallowed_imports``) in
    others. Never falls back to plain ``pickle``."""
    from tensorrt_llm import serialization

    parameters = inspect.signature(serialization.loads).parameters
    if "approved_imports" in parameters:
        return serialization.loads(raw, approved_imports=HANDLE_IMPORTS)
    if "disallowed_imports" in parameters:
        return serialization.loads(raw, disallowed_imports=HANDLE_DENIED)
    raise TypeError(f"tensorrt_llm.serialization.loads{inspect.signature(serialization.loads)} takes neither "
                    "approved_imports nor disallowed_imports; this TensorRT-LLM is not supported")


def _decode_handles(serialized: Any) -> list[tuple[str, Any]]:
    """The (name, handle) list of one bucket. Unpickling does not open the IPC handles (they are
    (function, args) pairs that TensorRT-LLM calls later), so counting names here is cheap."""
    if not isinstance(serialized, str):
        return list(serialized)
    handles = restricted_loads(base64.b64decode(serialized))
    if not isinstance(handles, list):
        raise ValueError(f"weight handles must be a list, got {type(handles).__name__}")
    return handles


class MedSSRWorkerExtension(WorkerExtension):
    _medssr_version: int = 0
    _medssr_pending: int | None = None
    _medssr_received: int = 0
    _medssr_group: Any = None

    # ---------------------------------------------------------------- bookkeeping
    def medssr_begin_refit(self, version: int) -> None:
        self._medssr_pending = int(version)
        self._medssr_received = 0

    def medssr_weight_version(self) -> int:
        return self._medssr_version

    def _medssr_model(self) -> torch.nn.Module:
        return self.engine.model_engine.model

    def update_weights(self, ipc_handles: dict | None = None):  # type: ignore[override]
        if ipc_handles is None:
            result = super().update_weights(None)
            if self._medssr_pending is not None:
                self._medssr_version, self._medssr_pending = self._medssr_pending, None
            return result
        device_uuid = self._medssr_device_uuid()
        if device_uuid not in ipc_handles:
            raise ValueError(f"refit payload has no handles for this worker's GPU {device_uuid}; "
                             f"it has {sorted(ipc_handles)}")
        handles = _decode_handles(ipc_handles[device_uuid])
        self._medssr_received += len(handles)
        return super().update_weights({device_uuid: handles})

    def _medssr_device_uuid(self) -> str:
        from tensorrt_llm._torch.utils import get_device_uuid

        return get_device_uuid(self.device_id)

    # ---------------------------------------------------------------- broadcast path
    def _medssr_worker_rank(self) -> int:
        rank = getattr(self, "global_rank", None)
        if rank is None and torch.distributed.is_available() and torch.distributed.is_initialized():
            rank = torch.distributed.get_rank()
        if rank is None:
            raise RuntimeError("cannot tell this TensorRT-LLM worker's rank for the refit group")
        return int(rank)

    def medssr_init_broadcast_group(self, host: str, port: int, world_size: int, backend: str) -> int:
        """Join the trainer's refit group as rank 1 + this worker's rank; returns that rank."""
        rank = 1 + self._medssr_worker_rank()
        self._medssr_group = make_refit_group(host, port, rank, world_size, backend)
        return rank

    def medssr_receive_bucket(self, metas: list, packed_bytes: int) -> int:
        if self._medssr_group is None:
            raise RuntimeError("medssr_receive_bucket before medssr_init_broadcast_group")
        buffer = torch.empty(int(packed_bytes), dtype=torch.uint8, device=self._medssr_device())
        broadcast_buffer(self._medssr_group, buffer)
        weights = unpack(meta_from_tuples(metas), buffer)
        self._medssr_load(weights)
        self._medssr_received += len(weights)
        return len(weights)

    def _medssr_device(self) -> torch.device:
        return next(self._medssr_model().parameters()).device

    def _medssr_load(self, weights: dict[str, torch.Tensor]) -> None:
        """Load one bucket the way 1.2's ``update_weights`` loads rebuilt IPC tensors."""
        model = self._medssr_model()
        if not hasattr(model, "first_pre_reload_weights"):
            for module in model.modules():
                if hasattr(module, "pre_reload_weights") and not getattr(module, "_weights_removed", False):
                    module.pre_reload_weights()
            model.first_pre_reload_weights = True
        self.engine.model_engine.model_loader.reload(model, weights, allow_partial_loading=True)

    # ---------------------------------------------------------------- verification
    def medssr_finish_refit(self, version: int, engine_names: list[str]) -> dict[str, Any]:
        params = dict(self._medssr_model().named_parameters())
        checksums = {name: (tensor_checksum(params[name]) if name in params else None) for name in engine_names}
        return {"rank": self._medssr_worker_rank(), "version": self._medssr_version,
                "received": self._medssr_received, "checksums": checksums}

    def medssr_memory(self) -> dict[str, Any]:
        """What this worker's GPU holds now, for the colocation ledger (``_cuda_memory``); the byte
        fields are None without CUDA (the test fake)."""
        return {"rank": self._medssr_worker_rank(), **_cuda_memory(self.device_id)}


def _cuda_memory(device_id: int) -> dict[str, int | None]:
    """``allocated``/``reserved``: torch's caching-allocator counters in this worker process;
    ``device_used``: total minus free from ``cudaMemGetInfo``, the whole GPU as the driver sees it
    (every process on it, and what sleeping engines have unmapped from their virtual-memory pools,
    which the caching allocator does not see)."""
    if not torch.cuda.is_available():
        return {"allocated": None, "reserved": None, "device_used": None}
    free, total = torch.cuda.mem_get_info(device_id)
    return {"allocated": torch.cuda.memory_allocated(device_id), "reserved": torch.cuda.memory_reserved(device_id),
            "device_used": total - free}
