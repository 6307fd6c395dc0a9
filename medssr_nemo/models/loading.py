"""Load a policy (model + tokenizer) from a model reference.

A reference is ``embedded:smollm2-135m-instruct`` (the default policy, see ``embedded.py``),
a local Hugging Face directory, or a hub id (needs network access to the hub).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

EMBEDDED_SMOLLM2 = "embedded:smollm2-135m-instruct"
_EMBEDDED = {EMBEDDED_SMOLLM2: "smollm2"}


def resolve_model_dir(reference: str) -> str:
    """A path or hub id ``from_pretrained`` accepts for ``reference``."""
    if reference in _EMBEDDED:
        from medssr_nemo.models.embedded import ensure_converted

        return str(ensure_converted())
    if reference.startswith("embedded:"):
        raise ValueError(f"unknown embedded model {reference!r}; known: {sorted(_EMBEDDED)}")
    path = Path(reference).expanduser()
    if path.exists():
        if not (path / "config.json").exists():
            raise FileNotFoundError(f"model directory {path} has no config.json (not a Hugging Face model)")
        return str(path)
    return reference  # a hub id


def load_tokenizer(reference: str) -> Any:
    from transformers import AutoTokenizer

    if reference in _EMBEDDED:
        from medssr_nemo.models.embedded import tokenizer_dir

        directory = str(tokenizer_dir())
    else:
        directory = resolve_model_dir(reference)
    tokenizer = AutoTokenizer.from_pretrained(directory)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_causal_lm(reference: str, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu") -> tuple[Any, Any]:
    """(model, tokenizer) for ``reference``, model in eval mode on ``device``."""
    from transformers import AutoModelForCausalLM

    directory = resolve_model_dir(reference)
    model = AutoModelForCausalLM.from_pretrained(directory, dtype=dtype).to(device)
    model.eval()
    return model, load_tokenizer(reference)
