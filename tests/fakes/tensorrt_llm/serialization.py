"""FAKE of tensorrt_llm/serialization.py: ``loads`` refuses the imports it is told to refuse."""

from __future__ import annotations

import io
import pickle
from typing import Any


def loads(data: bytes, disallowed_imports: dict[str, list[str]] | None = None) -> Any:
    denied = disallowed_imports or {}

    class Restricted(pickle.Unpickler):
        def find_class(self, module: str, name: str) -> Any:
            if name in denied.get(module, []):
                raise pickle.UnpicklingError(f"import {module}.{name} is not allowed")
            return super().find_class(module, name)

    return Restricted(io.BytesIO(data)).load()
