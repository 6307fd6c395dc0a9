"""FAKE of tensorrt_llm/serialization.py. The restricted unpickler's keyword differs between
versions: an allow-list (``approved_imports``, ``approved_module_patterns``) in some, a deny-list
(``disallowed_imports``) in others. Both are here; ``loads`` is the deny-list one (the one the
same era's ``rlhf_utils.update_weights`` calls) and tests swap in ``loads_allowlist``."""

from __future__ import annotations

import io
import pickle
import re
from typing import Any


def loads_allowlist(s: bytes, /, *, fix_imports: bool = True, encoding: str = "ASCII", errors: str = "strict",
                    buffers: Any = None, approved_imports: dict = {},  # noqa: B006 - the real default
                    approved_module_patterns: Any = None) -> Any:
    patterns = approved_module_patterns or []

    class Unpickler(pickle.Unpickler):
        def find_class(self, module: str, name: str) -> Any:
            if name in approved_imports.get(module, []) or any(re.match(p, module) for p in patterns):
                return super().find_class(module, name)
            raise ValueError(f"Import {module} | {name} is not allowed")

    if isinstance(s, str):
        raise TypeError("Can't load pickle from unicode string")
    return Unpickler(io.BytesIO(s), fix_imports=fix_imports, encoding=encoding, errors=errors,
                     buffers=buffers).load()


def loads_denylist(s: bytes, /, *, fix_imports: bool = True, encoding: str = "ASCII", errors: str = "strict",
                   buffers: Any = None, disallowed_imports: dict | None = None) -> Any:
    denied = disallowed_imports or {}

    class Unpickler(pickle.Unpickler):
        def find_class(self, module: str, name: str) -> Any:
            if name in denied.get(module, []):
                raise ValueError(f"Import {module} | {name} is not allowed")
            return super().find_class(module, name)

    if isinstance(s, str):
        raise TypeError("Can't load pickle from unicode string")
    return Unpickler(io.BytesIO(s), fix_imports=fix_imports, encoding=encoding, errors=errors,
                     buffers=buffers).load()


loads = loads_denylist
