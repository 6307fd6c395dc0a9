"""FAKE of tensorrt_llm/llmapi/rlhf_utils.py: ``WorkerExtension`` (no sleep/wakeup: those are on
``RayGPUWorker``). ``update_weights`` is a control action; its first call of a reload cycle runs
every module's ``pre_reload_weights``; each bucket's handles are rebuilt with the worker's device
id written into argument 6; ``update_weights(None)`` runs ``process_weights_after_loading`` and
``post_load_weights`` on every module, resets the prefix cache and ends the cycle."""

from __future__ import annotations

import base64
import inspect
from typing import Optional

from tensorrt_llm import serialization
from tensorrt_llm._ray_utils import control_action_decorator
from tensorrt_llm._torch.utils import get_device_uuid

_DENIED = {"torch.storage": ["_load_from_bytes"], "torch.hub": ["_load_local"], "torch": ["save"]}


class WorkerExtension:
    @control_action_decorator
    def update_weights(self, ipc_handles: Optional[dict] = None):
        model = self.engine.model_engine.model
        if not hasattr(model, "first_pre_reload_weights"):
            for module in model.modules():
                if hasattr(module, "pre_reload_weights") and not getattr(module, "_weights_removed", False):
                    module.pre_reload_weights()
            setattr(model, "first_pre_reload_weights", True)
        if ipc_handles is not None:
            device_uuid = get_device_uuid(self.device_id)
            if device_uuid not in ipc_handles:
                raise ValueError(f"Device UUID {device_uuid} not found in ipc_handles")
            serialized = ipc_handles[device_uuid]
            if isinstance(serialized, str):
                keyword = ("disallowed_imports" if "disallowed_imports" in inspect.signature(serialization.loads).parameters
                           else "approved_module_patterns")
                value = _DENIED if keyword == "disallowed_imports" else [r".*"]
                handles = serialization.loads(base64.b64decode(serialized), **{keyword: value})
                if not isinstance(handles, list):
                    raise ValueError(f"Deserialized data must be a list, got {type(handles).__name__} instead")
            else:
                handles = serialized
            weights = {}
            for name, (func, args) in handles:
                args = list(args)
                args[6] = self.device_id
                weights[name] = func(*args)
            self.engine.model_engine.model_loader.reload(model, weights, allow_partial_loading=True)
        else:
            for module in model.modules():
                if hasattr(module, "process_weights_after_loading") and not getattr(module, "_weights_removed", False):
                    module.process_weights_after_loading()
                if hasattr(module, "post_load_weights") and not getattr(module, "_weights_removed", False):
                    module.post_load_weights()
            self.engine.finalize_weights()
            self.engine.reset_prefix_cache()
            delattr(model, "first_pre_reload_weights")

    def reset_prefix_cache(self) -> None:
        self.engine.reset_prefix_cache()

    def check_weights_updated(self) -> bool:
        import torch

        return all(torch.allclose(p, torch.zeros_like(p)) for _, p in self.engine.model_engine.model.named_parameters())

    def start_profile(self) -> None:
        pass

    def stop_profile(self) -> None:
        pass
