"""FAKE of tensorrt_llm/_ray_utils.py: ``control_action_decorator`` (the real one makes the worker
finish in-flight requests before a control action such as a weight update or sleep runs)."""

from __future__ import annotations

import functools
from typing import Any, Callable


def control_action_decorator(func: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(func)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        events = getattr(getattr(self, "engine", None), "events", None)
        if events is not None:
            events.append(f"control:{func.__name__}")
        return func(self, *args, **kwargs)

    wrapper._control_action = True  # what tests/tensorrt_llm_contract.json's "decorators" checks
    return wrapper
