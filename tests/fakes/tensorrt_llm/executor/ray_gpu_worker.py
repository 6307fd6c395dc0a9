"""FAKE of tensorrt_llm/executor/ray_gpu_worker.py: where ``sleep``/``wakeup`` live (on
``RayGPUWorker``, behind ``control_action_decorator``, refused unless the LLM was built with sleep
enabled) and how a worker extension is mixed in (``RayWorkerWrapper._inject_worker_extension``: a
new class deriving from the worker class and the extension, refusing any non-dunder attribute the
worker class already has). No Ray here: the wrapper is a plain object in this process."""

from __future__ import annotations

import importlib
from typing import Any, List, Optional, Type

from tensorrt_llm._ray_utils import control_action_decorator
from tensorrt_llm._torch.virtual_memory import verify_sleep_wakeup_tags


def resolve_obj_by_qualname(qualname: str) -> Any:
    module_name, obj_name = qualname.rsplit(".", 1)
    return getattr(importlib.import_module(module_name), obj_name)


def _sleep_enabled(llm_args: Any) -> bool:
    if hasattr(llm_args, "sleep_config"):
        return llm_args.sleep_config is not None
    return bool(getattr(llm_args, "enable_sleep", False))


class RayGPUWorker:
    def __init__(self, device_id: int, engine: Any, executor_config: Any = None, batched_logits_processor: Any = None,
                 postproc_worker_config: Any = None, is_llm_executor: Optional[bool] = None,
                 hf_model_dir: Any = None, tokenizer: Any = None, llm_args: Any = None,
                 rpc_addr: Optional[str] = None) -> None:
        self.device_id = device_id
        self.engine = engine          # the fake PyExecutor (see llmapi/llm.py)
        self.llm_args = llm_args
        self.global_rank = engine.rank
        self.rank = engine.rank

    @control_action_decorator
    def sleep(self, sleep_tags: List[str]) -> None:
        if not _sleep_enabled(self.llm_args):
            raise ValueError("Sleep feature is not enabled, please set sleep_config in the LLM arguments.")
        self.engine.release(set(verify_sleep_wakeup_tags(sleep_tags)))

    @control_action_decorator
    def wakeup(self, wakeup_tags: List[str]) -> None:
        if not _sleep_enabled(self.llm_args):
            raise ValueError("Sleep feature is not enabled, please set sleep_config in the LLM arguments.")
        self.engine.materialize(set(verify_sleep_wakeup_tags(wakeup_tags)))

    def shutdown(self) -> None:
        self.engine = None


class RayWorkerWrapper:
    def __init__(self, worker_cls: Type[Any], worker_kwargs: dict, world_size: int, rank: int) -> None:
        worker_cls = RayWorkerWrapper._inject_worker_extension(
            worker_cls, worker_kwargs.pop("ray_worker_extension_cls", None))
        self.worker = worker_cls(device_id=rank, **worker_kwargs)

    def call_worker_method(self, method_name: str, *args: Any, **kwargs: Any) -> Any:
        method = getattr(self.worker, method_name, None)
        if method is None or not callable(method):
            raise AttributeError(f"The RayGPUWorker has no method called '{method_name}'.")
        return method(*args, **kwargs)

    @staticmethod
    def _inject_worker_extension(worker_class: Type[Any], extension_cls_name: Optional[str]) -> Type[Any]:
        if not extension_cls_name:
            return worker_class
        try:
            extension_cls = resolve_obj_by_qualname(extension_cls_name)
        except (ImportError, AttributeError, ValueError) as e:
            raise RuntimeError(f"Failed to load worker extension '{extension_cls_name}'") from e
        for attr in dir(extension_cls):
            if attr.startswith("__"):
                continue
            if hasattr(worker_class, attr):
                raise ValueError(f"Worker class {worker_class.__name__} already defines '{attr}', "
                                 f"which conflicts with extension {extension_cls.__name__}.")
        return type(f"{worker_class.__name__}With{extension_cls.__name__}", (worker_class, extension_cls),
                    {"__module__": worker_class.__module__})
