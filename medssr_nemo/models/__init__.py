"""Model loading: the embedded SmolLM2 policy, any Hugging Face causal LM, tiny test models.

The names below are imported on first use: ``medssr_nemo.models.cache`` (the cache directory,
used by torch-free code such as the knowledge loaders) must not pull in torch and transformers.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "EMBEDDED_SMOLLM2": "loading",
    "load_causal_lm": "loading",
    "load_tokenizer": "loading",
    "resolve_model_dir": "loading",
    "make_tiny_model": "tiny",
    "save_tiny_model": "tiny",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'medssr_nemo.models' has no attribute {name!r}")
    return getattr(importlib.import_module(f"medssr_nemo.models.{module}"), name)
