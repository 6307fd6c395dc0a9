"""Model loading: the embedded SmolLM2 policy, any Hugging Face causal LM, tiny test models."""

from medssr_nemo.models.loading import EMBEDDED_SMOLLM2, load_causal_lm, load_tokenizer, resolve_model_dir
from medssr_nemo.models.tiny import make_tiny_model, save_tiny_model

__all__ = [
    "EMBEDDED_SMOLLM2",
    "load_causal_lm",
    "load_tokenizer",
    "make_tiny_model",
    "resolve_model_dir",
    "save_tiny_model",
]
