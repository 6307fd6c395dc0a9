"""FAKE of tensorrt_llm/llmapi/rlhf_utils.py (1.2): same methods and payload format."""

from __future__ import annotations

import base64
from typing import Optional

from tensorrt_llm import serialization
from tensorrt_llm._torch.utils import get_device_uuid
from tensorrt_llm.llmapi.llm_args import ExecutorMemoryType


class WorkerExtension:
    """Set by the (fake) worker: ``self.engine`` (PyExecutor), ``self.device_id``, ``self.rank``."""

    def update_weights(self, ipc_handles: Optional[dict] = None):
        model = self.engine.model_engine.model
        if not hasattr(model, "first_pre_reload_weights"):
            model.first_pre_reload_weights = True
        if ipc_handles is not None:
            device_uuid = get_device_uuid(self.device_id)
            if device_uuid not in ipc_handles:
                raise ValueError(f"Device UUID {device_uuid} not found in ipc_handles")
            serialized = ipc_handles[device_uuid]
            if isinstance(serialized, str):
                handles = serialization.loads(base64.b64decode(serialized), disallowed_imports={
                    "torch.storage": ["_load_from_bytes"], "torch.hub": ["_load_local"], "torch": ["save"]})
                if not isinstance(handles, list):
                    raise ValueError("Deserialized data must be a list")
            else:
                handles = serialized
            weights = {}
            for name, (func, args) in handles:
                args = list(args)
                if getattr(func, "__name__", "") == "rebuild_cuda_tensor":
                    args[6] = self.device_id
                weights[name] = func(*args)
            self.engine.model_engine.model_loader.reload(model, weights, allow_partial_loading=True)
        else:
            self.engine.finalize_weights()
            self.engine.reset_prefix_cache()
            delattr(model, "first_pre_reload_weights")

    def reset_prefix_cache(self) -> None:
        self.engine.reset_prefix_cache()

    def sleep(self, sleep_tags):
        self.engine.release({ExecutorMemoryType(t) for t in sleep_tags})

    def wakeup(self, wakeup_tags):
        self.engine.materialize({ExecutorMemoryType(t) for t in wakeup_tags})
