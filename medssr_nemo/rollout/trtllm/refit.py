"""The weight-refit protocol: policy tensors -> engine workers, verified before any generation.

One refit, as the leader (the process that owns the ``LLM``) drives it:

1. ``medssr_begin_refit(version)`` on every engine worker (they reset their received-count);
2. each size-bounded bucket goes through a transport:
   - colocated (``IpcTransport``): CUDA IPC handles of the trainer's own GPU tensors, gathered
     from every training rank and handed to TensorRT-LLM's ``update_weights(ipc_handles)``;
   - separate rollout GPUs (``BroadcastTransport``): one packed byte buffer per bucket broadcast
     from training rank 0 over a process group shared with the engine workers, while the workers
     receive it inside ``medssr_receive_bucket``;
3. ``update_weights(None)`` finalises the load (TensorRT-LLM's post-load hooks), then
   ``reset_prefix_cache()`` drops every KV block computed with the old weights (TensorRT-LLM 1.2's
   finaliser already resets it; calling it again costs nothing and does not depend on that);
4. ``medssr_finish_refit(version, engine_names)``: every worker reports the version it now holds,
   how many tensors it received and checksums of a few of the tensors it HOLDS, under the engine's
   own (fused, sharded) names; the trainer rebuilds each expected shard from the Hugging Face
   tensors it sent (``fused_names.py``) and any difference raises ``StaleWeightsError``.

The engine marks itself stale before step 1 and valid only after step 4 passes, so a failed or
partial refit can never be followed by a generation.
"""

from __future__ import annotations

import base64
import concurrent.futures
import dataclasses
import datetime
import logging
import pickle
from typing import Any, Callable, Iterable, Iterator, Protocol, Sequence

import torch

from medssr_nemo.rollout.trtllm.buckets import iter_buckets
from medssr_nemo.rollout.trtllm.checksum import checksums_match, tensor_checksum
from medssr_nemo.rollout.trtllm.fused_names import EngineTensor, engine_tensor, expected_shard
from medssr_nemo.rollout.trtllm.packing import TensorMeta, pack

log = logging.getLogger(__name__)

RPC_TIMEOUT_S = 1800.0


class StaleWeightsError(RuntimeError):
    """The engine does not hold the weights of the version it was asked to load."""


class EngineRpc(Protocol):
    def call(self, method: str, *args: Any) -> list[Any]:
        """Run ``method(*args)`` on every engine worker; one result per worker."""

    def start(self, method: str, *args: Any) -> "concurrent.futures.Future[list[Any]]":
        """Like ``call`` but returns at once (the broadcast needs the workers inside a receive)."""


class LLMRpc:
    """``EngineRpc`` over ``tensorrt_llm.LLM._collective_rpc(method, args=...)`` (1.2 LLM API)."""

    def __init__(self, llm: Any) -> None:
        self.llm = llm
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="trtllm-rpc")

    def call(self, method: str, *args: Any) -> list[Any]:
        result = self.llm._collective_rpc(method, args=tuple(args))
        return list(result) if isinstance(result, (list, tuple)) else [result]

    def start(self, method: str, *args: Any) -> "concurrent.futures.Future[list[Any]]":
        return self._pool.submit(self.call, method, *args)


class Collective(Protocol):
    """What the refit needs from the training job's own process group (SPMD ranks)."""

    def gather_to_leader(self, obj: Any) -> list[Any] | None: ...

    def scatter_from_leader(self, objs: list[Any] | None) -> Any: ...

    def barrier(self) -> None: ...


class SingleProcess:
    def gather_to_leader(self, obj: Any) -> list[Any] | None:
        return [obj]

    def scatter_from_leader(self, objs: list[Any] | None) -> Any:
        assert objs is not None and len(objs) == 1
        return objs[0]

    def barrier(self) -> None:
        return None


class TorchDistributed:
    """The default ``torch.distributed`` group; rank 0 is the leader."""

    def gather_to_leader(self, obj: Any) -> list[Any] | None:
        import torch.distributed as dist

        out: list[Any] | None = [None] * dist.get_world_size() if dist.get_rank() == 0 else None
        dist.gather_object(obj, out, dst=0)
        return out

    def scatter_from_leader(self, objs: list[Any] | None) -> Any:
        import torch.distributed as dist

        received: list[Any] = [None]
        dist.scatter_object_list(received, objs if dist.get_rank() == 0 else None, src=0)
        return received[0]

    def barrier(self) -> None:
        import torch.distributed as dist

        dist.barrier()


@dataclasses.dataclass
class RefitReport:
    version: int
    tensors: int
    buckets: int
    bytes: int
    checksums: dict[str, list[float]]   # engine tensor name -> expected checksum per engine TP rank


class IpcTransport:
    """Colocated engine: CUDA IPC handles, serialised as TensorRT-LLM 1.2's ``update_weights``
    expects (``{device_uuid: base64(pickle([(name, reduce_tensor(t)), ...]))}``, as verl sends)."""

    def __init__(self, device_uuid: str, collective: Collective | None = None,
                 make_handle: Callable[[torch.Tensor], Any] | None = None) -> None:
        from torch.multiprocessing.reductions import reduce_tensor

        self.device_uuid = device_uuid
        self.collective = collective or SingleProcess()
        self.make_handle = make_handle or reduce_tensor

    def send(self, rpc: EngineRpc | None, bucket: Sequence[tuple[str, torch.Tensor]]) -> None:
        handles = [(name, self.make_handle(tensor.detach())) for name, tensor in bucket]
        payload = {self.device_uuid: base64.b64encode(pickle.dumps(handles)).decode("ascii")}
        gathered = self.collective.gather_to_leader(payload)
        if rpc is not None:
            merged: dict[str, str] = {}
            for part in gathered or []:
                merged.update(part)
            rpc.call("update_weights", merged)
        # the tensors behind the handles must live until every worker has copied them
        self.collective.barrier()


def make_refit_group(host: str, port: int, rank: int, world_size: int, backend: str,
                     timeout_s: float = 600.0) -> Any:
    """A process group of the trainer (rank 0) and the engine workers (ranks 1..), built from its
    own TCP store so it does not touch the training job's default group."""
    import torch.distributed as dist

    timeout = datetime.timedelta(seconds=timeout_s)
    store = dist.TCPStore(host, port, world_size, rank == 0, timeout=timeout, wait_for_workers=False)
    prefixed = dist.PrefixStore("medssr_refit", store)
    if backend == "gloo":
        return dist.ProcessGroupGloo(prefixed, rank, world_size, timeout)
    if backend == "nccl":
        options = dist.ProcessGroupNCCL.Options()
        options._timeout = timeout
        return dist.ProcessGroupNCCL(prefixed, rank, world_size, options)
    raise ValueError(f"refit backend must be 'nccl' or 'gloo', got {backend!r}")


def broadcast_buffer(group: Any, buffer: torch.Tensor) -> None:
    """Broadcast ``buffer`` in place from rank 0 of ``group`` (a bare ProcessGroup)."""
    import torch.distributed as dist

    options = dist.BroadcastOptions()
    options.rootRank = 0
    group.broadcast([buffer], options).wait()


class BroadcastTransport:
    """Rollout on its own GPUs: one packed buffer per bucket, broadcast from training rank 0."""

    def __init__(self, group: Any, device: torch.device | str) -> None:
        self.group = group
        self.device = device

    def send(self, rpc: EngineRpc | None, bucket: Sequence[tuple[str, torch.Tensor]]) -> None:
        if rpc is None:  # only the leader talks to the engine in this mode
            return
        metas, buffer = pack(bucket, self.device)
        receiving = rpc.start("medssr_receive_bucket", [dataclasses.astuple(m) for m in metas], buffer.numel())
        broadcast_buffer(self.group, buffer)
        receiving.result(timeout=RPC_TIMEOUT_S)


class Refitter:
    """Runs the protocol in the module docstring; ``rpc`` is None on non-leader ranks.
    ``verify_tensors`` are Hugging Face names; ``model_type`` and ``engine_tp`` say where the
    engine keeps them (``fused_names.py``)."""

    def __init__(self, rpc: EngineRpc | None, transport: Any, *, bucket_bytes: int,
                 verify_tensors: Sequence[str], engine_dtype: torch.dtype | None,
                 device: torch.device | str | None, collective: Collective | None = None,
                 model_type: str = "llama", engine_tp: int = 1) -> None:
        self.rpc = rpc
        self.transport = transport
        self.bucket_bytes = bucket_bytes
        self.verify_tensors = tuple(verify_tensors)
        self.targets: dict[str, EngineTensor] = {name: engine_tensor(name, model_type) for name in self.verify_tensors}
        self.engine_dtype = engine_dtype
        self.device = device
        self.collective = collective or SingleProcess()
        self.engine_tp = engine_tp

    def _prepared(self, named_tensors: Iterable[tuple[str, torch.Tensor]]) -> Iterator[tuple[str, torch.Tensor]]:
        for name, tensor in named_tensors:
            if not isinstance(tensor, torch.Tensor):
                raise TypeError(f"export_hf_weights yielded {type(tensor).__name__} for {name!r}, expected a tensor")
            tensor = tensor.detach()
            if self.device is not None:
                tensor = tensor.to(self.device, non_blocking=True)
            if self.engine_dtype is not None and tensor.is_floating_point():
                tensor = tensor.to(self.engine_dtype)
            yield name, tensor

    def expected_checksums(self, sources: dict[str, torch.Tensor]) -> dict[str, list[float]]:
        """Engine tensor name -> checksum of the shard each engine TP rank should hold."""
        missing = [name for name in self.verify_tensors if name not in sources]
        if missing:
            raise StaleWeightsError(
                f"cannot verify the refit: the policy exported no tensor named {missing}; "
                "set rollout.options.verify_tensors to names that export_hf_weights yields")
        expected: dict[str, list[float]] = {}
        for target in self.targets.values():
            expected[target.name] = [tensor_checksum(expected_shard(target, sources, rank, self.engine_tp))
                                     for rank in range(self.engine_tp)]
        return expected

    def refit(self, named_tensors: Iterable[tuple[str, torch.Tensor]], version: int) -> RefitReport:
        leader = self.rpc is not None
        if leader:
            self.rpc.call("medssr_begin_refit", version)
        needed = {source for target in self.targets.values() for source in target.sources}
        sources: dict[str, torch.Tensor] = {}
        tensors = buckets = nbytes = 0
        for bucket in iter_buckets(self._prepared(named_tensors), self.bucket_bytes):
            for name, tensor in bucket:
                if name in needed:
                    sources[name] = tensor.to("cpu", copy=True)
                nbytes += tensor.numel() * tensor.element_size()
            self.transport.send(self.rpc, bucket)
            tensors += len(bucket)
            buckets += 1
        checksums = self.expected_checksums(sources)
        if leader:
            self.rpc.call("update_weights", None)     # finalise: TensorRT-LLM post-load hooks
            self.rpc.call("reset_prefix_cache")       # no KV block of the old weights survives
            reports = self.rpc.call("medssr_finish_refit", version, sorted(checksums))
            verify_reports(reports, version=version, tensors=tensors, checksums=checksums)
        self.collective.barrier()
        log.info("refit to weight version %d: %d tensors in %d buckets (%.1f MiB)",
                 version, tensors, buckets, nbytes / 2**20)
        return RefitReport(version, tensors, buckets, nbytes, checksums)


def verify_reports(reports: Sequence[dict[str, Any]], *, version: int, tensors: int,
                   checksums: dict[str, list[float]]) -> None:
    """Raise ``StaleWeightsError`` unless every worker holds ``version``, received every tensor
    and holds the expected shard of every checked engine tensor (worker rank ``w`` holds TP
    rank ``w % tp``)."""
    if not reports:
        raise StaleWeightsError("no engine worker answered the refit check")
    problems = []
    for position, report in enumerate(reports):
        worker = report.get("rank")
        worker = position if worker is None else int(worker)
        if report.get("version") != version:
            problems.append(f"worker {worker} holds weight version {report.get('version')}, expected {version}")
        if report.get("received") != tensors:
            problems.append(f"worker {worker} received {report.get('received')} tensors, {tensors} were sent")
        for name, per_rank in checksums.items():
            expected = per_rank[worker % len(per_rank)]
            actual = (report.get("checksums") or {}).get(name)
            if actual is None:
                problems.append(f"worker {worker} has no parameter {name!r} to check")
            elif not checksums_match(expected, actual):
                problems.append(f"worker {worker}: checksum of {name!r} is {actual!r}, sent {expected!r}")
    if problems:
        raise StaleWeightsError("weight refit failed, refusing to generate with stale weights: " + "; ".join(problems))


def meta_from_tuples(rows: Sequence[Sequence[Any]]) -> list[TensorMeta]:
    return [TensorMeta(str(r[0]), str(r[1]), tuple(int(d) for d in r[2]), int(r[3])) for r in rows]
