"""The one place that pins TensorRT-LLM, imports it lazily and probes what it can do.

Pinned: TensorRT-LLM ``PINNED_VERSION`` (PyTorch backend, LLM API), shipped in the NGC image
``NGC_IMAGE``. The Dockerfile's ``BASE_IMAGE`` default must name the same tag (a test checks).
Every call this package makes was read from the TensorRT-LLM sources of the 1.2 line:

- ``tensorrt_llm.LLM(model, tokenizer=None, ..., tensor_parallel_size=1, dtype="auto", **kwargs)``
  with the ``TorchLlmArgs`` keys ``pipeline_parallel_size``, ``kv_cache_config``,
  ``max_batch_size``, ``max_seq_len``, ``skip_tokenizer_init``, ``orchestrator_type="ray"`` and
  ``ray_worker_extension_cls`` (``tensorrt_llm/llmapi/llm_args.py``);
  ``LLM.generate(inputs, sampling_params)`` and
  ``LLM._collective_rpc(method, args=(), kwargs=None, non_block=False, unique_reply_rank=None)``
  (``tensorrt_llm/llmapi/llm.py``, marked "prototype" there).
- ``tensorrt_llm.SamplingParams`` (``tensorrt_llm/sampling_params.py``): ``max_tokens``,
  ``temperature``, ``top_p``, ``top_k``, ``seed``, ``end_id``, ``pad_id``, ``stop_token_ids``,
  ``include_stop_str_in_output``, ``detokenize``, ``logprobs`` (an int: 0 or 1 returns the sampled
  token's logprob), ``logits_processor`` (callable ``(req_id, logits, token_ids, stream_ptr,
  client_id)`` modifying ``logits`` in place; PyTorch backend).
- ``tensorrt_llm.llmapi.rlhf_utils.WorkerExtension.update_weights(ipc_handles)``: a dict
  ``device UUID -> base64(pickle([(name, reduce_tensor(t)), ...]))`` loads one bucket (pre-reload
  hooks first, argument 6 of each handle set to the worker's device id);
  ``update_weights(None)`` finalises (post-load hooks, then ``engine.reset_prefix_cache()``);
  ``reset_prefix_cache()``. ``sleep(tags)``/``wakeup(tags)`` are NOT on the extension but on
  ``tensorrt_llm.executor.ray_gpu_worker.RayGPUWorker`` (control actions, refused unless sleep is
  enabled), which the extension is composed with by class (attribute clashes refused); they take
  memory tags such as ``"model"`` and ``"kv_cache"``.
- The signatures and placements above are pinned in ``tests/contracts/tensorrt_llm_1_2.json``
  (with the file and commit each was read from) and the test fake is checked against it.
- Sleep mode is switched on at construction: ``sleep_config=SleepConfig(restore_modes=...)`` in the
  newer releases (the KV cache discarded on sleep, every other tag restored from host memory;
  ``engine.RESTORE_MODES``), ``enable_sleep=True`` in the older ones; which one is probed, not assumed.

NEVER RUN against a real TensorRT-LLM: no machine used to write this had it (PyPI has no wheels;
the GPU machines lent for checks have no NGC image). Only the fake in ``tests/fakes/tensorrt_llm``,
which mirrors the classes and signatures above, has exercised this code.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import re
from types import ModuleType
from typing import Any

PINNED_VERSION = "1.2.0"
NGC_IMAGE = f"nvcr.io/nvidia/tensorrt-llm/release:{PINNED_VERSION}"
# The worker extension TensorRT-LLM instantiates inside each of its GPU workers (by dotted path).
WORKER_EXTENSION = "medssr_nemo.rollout.trtllm.worker_extension.MedSSRWorkerExtension"


class TensorRTLLMUnavailable(ImportError):
    """TensorRT-LLM is not importable here, or lacks something this engine needs."""


def _version_tuple(version: str) -> tuple[int, int, int]:
    """(major, minor, patch) from the leading digits of each part: "1.2.0rc4" -> (1, 2, 0)."""
    parts = [int(m.group(1)) if (m := re.match(r"(\d+)", piece)) else 0 for piece in version.split(".")[:3]]
    parts += [0] * (3 - len(parts))
    return parts[0], parts[1], parts[2]


def import_trtllm() -> ModuleType:
    """``tensorrt_llm``, or a ``TensorRTLLMUnavailable`` saying which container to use."""
    try:
        return importlib.import_module("tensorrt_llm")
    except ImportError as err:
        raise TensorRTLLMUnavailable(
            f"rollout.engine=tensorrt_llm needs TensorRT-LLM {PINNED_VERSION} (PyTorch backend), "
            f"which is not importable here ({err}). Run inside the NGC image {NGC_IMAGE} "
            "(the repository's Dockerfile builds on it), or use rollout.engine=inprocess."
        ) from err


@dataclasses.dataclass(frozen=True)
class Capabilities:
    """What the installed TensorRT-LLM offers, found by looking rather than by version numbers."""

    version: str
    has_llm: bool
    has_collective_rpc: bool
    has_worker_extension: bool          # rlhf_utils.WorkerExtension.update_weights(ipc_handles)
    sleep_kwarg: str | None             # "sleep_config", "enable_sleep" or None
    sampling_fields: frozenset[str]
    worker_has_sleep: bool = True       # executor.ray_gpu_worker.RayGPUWorker.sleep/wakeup
    unpickler_keyword: str | None = "disallowed_imports"   # serialization.loads: allow- or deny-list

    def missing(self, *, colocated: bool, need_allowed_tokens: bool = False) -> list[str]:
        """Human-readable list of what this engine needs and the installed version lacks."""
        problems = []
        if _version_tuple(self.version) < _version_tuple("1.2.0"):
            problems.append(f"version {self.version} is older than 1.2.0 (pinned: {PINNED_VERSION})")
        if not self.has_llm:
            problems.append("tensorrt_llm.LLM is missing")
        if not self.has_collective_rpc:
            problems.append("LLM._collective_rpc (the RL weight-refit hook) is missing")
        if not self.has_worker_extension:
            problems.append("tensorrt_llm.llmapi.rlhf_utils.WorkerExtension.update_weights is missing")
        if colocated and self.sleep_kwarg is None:
            problems.append("sleep mode (LLM argument sleep_config or enable_sleep) is missing, "
                            "so a colocated engine cannot free GPU memory for training")
        if colocated and not self.worker_has_sleep:
            problems.append("executor.ray_gpu_worker.RayGPUWorker has no sleep/wakeup")
        if self.unpickler_keyword is None:
            problems.append("serialization.loads takes neither approved_imports nor disallowed_imports")
        needed = {"max_tokens", "temperature", "top_p", "top_k", "seed", "stop_token_ids",
                  "include_stop_str_in_output", "logprobs", "end_id"}
        if need_allowed_tokens:
            needed.add("logits_processor")
        lacking = sorted(needed - self.sampling_fields)
        if lacking:
            problems.append(f"SamplingParams lacks {', '.join(lacking)}")
        return problems


def _llm_arg_names(trtllm: ModuleType) -> set[str]:
    names: set[str] = set()
    llmapi = getattr(trtllm, "llmapi", None)
    args_cls = getattr(llmapi, "TorchLlmArgs", None) if llmapi is not None else None
    if args_cls is not None:
        fields = getattr(args_cls, "model_fields", None)  # pydantic model in the real package
        names |= set(fields) if fields else {f.name for f in dataclasses.fields(args_cls)}
    llm_cls = getattr(trtllm, "LLM", None)
    if llm_cls is not None:
        names |= set(inspect.signature(llm_cls.__init__).parameters)
    return names


def probe(trtllm: ModuleType) -> Capabilities:
    """Inspect an imported ``tensorrt_llm`` (the real one or the test fake)."""
    llm_cls = getattr(trtllm, "LLM", None)
    try:
        rlhf = importlib.import_module(f"{trtllm.__name__}.llmapi.rlhf_utils")
        worker_ext = getattr(rlhf, "WorkerExtension", None)
    except ImportError:
        worker_ext = None
    arg_names = _llm_arg_names(trtllm)
    sleep_kwarg = next((k for k in ("sleep_config", "enable_sleep") if k in arg_names), None)
    try:
        worker = importlib.import_module(f"{trtllm.__name__}.executor.ray_gpu_worker").RayGPUWorker
        worker_has_sleep = hasattr(worker, "sleep") and hasattr(worker, "wakeup")
    except (ImportError, AttributeError):
        worker_has_sleep = False
    try:
        loads = importlib.import_module(f"{trtllm.__name__}.serialization").loads
        params = inspect.signature(loads).parameters
        unpickler = next((k for k in ("approved_imports", "disallowed_imports") if k in params), None)
    except (ImportError, AttributeError):
        unpickler = None
    sampling_cls: Any = getattr(trtllm, "SamplingParams", None)
    fields = frozenset(f.name for f in dataclasses.fields(sampling_cls)) if sampling_cls else frozenset()
    return Capabilities(
        version=str(getattr(trtllm, "__version__", "0")),
        has_llm=llm_cls is not None,
        has_collective_rpc=llm_cls is not None and hasattr(llm_cls, "_collective_rpc"),
        has_worker_extension=worker_ext is not None and hasattr(worker_ext, "update_weights"),
        sleep_kwarg=sleep_kwarg,
        sampling_fields=fields,
        worker_has_sleep=worker_has_sleep,
        unpickler_keyword=unpickler,
    )


def check_capabilities(caps: Capabilities, *, colocated: bool, need_allowed_tokens: bool = True) -> None:
    """Raise one clear error listing everything the installed TensorRT-LLM lacks."""
    problems = caps.missing(colocated=colocated, need_allowed_tokens=need_allowed_tokens)
    if problems:
        raise TensorRTLLMUnavailable(
            f"the installed TensorRT-LLM ({caps.version}) cannot serve as the rollout engine: "
            + "; ".join(problems) + f". Use the NGC image {NGC_IMAGE}."
        )
