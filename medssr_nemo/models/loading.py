"""Load a policy (model + tokenizer) from a model reference.

A reference is ``embedded:smollm2-135m-instruct`` (the default policy, see ``embedded.py``),
a local Hugging Face directory, or a hub id (needs network access to the hub).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from medssr_nemo.models.embedded import ensure_converted
from medssr_nemo.models.embedded import tokenizer_dir

EMBEDDED_SMOLLM2 = "embedded:smollm2-135m-instruct"
_EMBEDDED = {EMBEDDED_SMOLLM2: "smollm2"}


def resolve_model_dir(reference: str) -> str:
    """A path or hub id ``from_pretrained`` accepts for ``reference``."""
    if reference in _EMBEDDED:
        return str(ensure_converted())
    if reference.startswith("embedded:"):
        raise ValueError(f"unknown embedded model {reference!r}; known: {sorted(_EMBEDDED)}")
    path = Path(reference).expanduser()
    if path.exists():
        if not (path / "config.json").exists():
            raise FileNotFoundError(f"model directory {path} has no config.json (not a Hugging Face model)")
        return str(path)
    if not looks_like_hub_id(reference):
        raise FileNotFoundError(f"model path {reference} does not exist (and it is not a hub id such as "
                                "Qwen/Qwen3-8B-Base)")
    return reference  # a hub id


def looks_like_hub_id(reference: str) -> bool:
    """``name`` or ``org/name``, nothing that can only be a file system path."""
    return (not reference.startswith(("/", ".", "~")) and "\\" not in reference
            and reference.count("/") <= 1 and bool(reference.strip("/")))


def local_model_dir(reference: str) -> Path | None:
    """The directory ``reference`` loads from when it is on this machine (an embedded model, a
    directory, or a hub id already in the Hugging Face cache); None otherwise."""
    resolved = resolve_model_dir(reference)
    if Path(resolved).exists():
        return Path(resolved)
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(resolved, local_files_only=True))
    except Exception:   # not cached (or no hub library): only the name identifies it
        return None


def model_type_of(reference: str) -> str | None:
    """``model_type`` from the checkpoint's config.json (``qwen3``, ``llama``, ...), if local."""
    import json

    directory = local_model_dir(reference)
    if directory is None or not (directory / "config.json").exists():
        return None
    return json.loads((directory / "config.json").read_text(encoding="utf-8")).get("model_type")


def model_type_or_none(reference: str) -> str | None:
    """``model_type_of``, or None where the reference cannot be read (a test's in-memory policy,
    an unreadable config): callers then fall back to rules on the name."""
    try:
        return model_type_of(reference)
    except (OSError, ValueError):
        return None


def _from_pretrained(loader: Any, reference: str, directory: str, **kwargs: Any) -> Any:
    """``loader.from_pretrained`` with a hub failure as one line naming the reference."""
    try:
        return loader.from_pretrained(directory, **kwargs)
    except OSError as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise FileNotFoundError(f"cannot load model {reference!r}: {first}") from None


def load_tokenizer(reference: str) -> Any:
    from transformers import AutoTokenizer

    if reference in _EMBEDDED:
        directory = str(tokenizer_dir())
    else:
        directory = resolve_model_dir(reference)
    tokenizer = _from_pretrained(AutoTokenizer, reference, directory)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_causal_lm(reference: str, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu") -> tuple[Any, Any]:
    """(model, tokenizer) for ``reference``, model in eval mode on ``device``."""
    from transformers import AutoModelForCausalLM

    directory = resolve_model_dir(reference)
    model = _from_pretrained(AutoModelForCausalLM, reference, directory, dtype=dtype).to(device)
    model.eval()
    return model, load_tokenizer(reference)
