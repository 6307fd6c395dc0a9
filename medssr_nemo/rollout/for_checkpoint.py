"""The rollout engine that evaluation and pseudo-labelling sample from, for one checkpoint.

An engine that runs on a transformers module (``needs_policy_module``, the in-process engine)
gets the checkpoint loaded on this rank's device. An engine that loads its own weights
(TensorRT-LLM) gets only the tokenizer and the checkpoint's path, so no second full copy of the
model sits in GPU memory beside the engine. ``rollout.options.model_path`` names the checkpoint a
*training* engine starts from before its first refit; evaluation and labelling have no refit and
must sample the checkpoint they were asked about, so it is dropped here. Under torchrun the
engine is split over the ranks (``rank_split.split``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from medssr_nemo import registry
from medssr_nemo.models.loading import load_causal_lm, load_tokenizer
from medssr_nemo.rollout import rank_split
from medssr_nemo.rollout.interfaces import RolloutEngine, needs_policy_module


def engine_for_checkpoint(rollout_cfg: Any, engine_name: str, reference: str,
                          dtype: str) -> tuple[RolloutEngine, Any]:
    """(engine, tokenizer) sampling ``reference`` with the registered engine ``engine_name``."""
    factory = registry.get("rollout_engine", engine_name)
    if needs_policy_module(factory):
        device = "cuda" if torch.cuda.is_available() else "cpu"
        model, tokenizer = load_causal_lm(reference, dtype=getattr(torch, dtype), device=device)
        engine = factory(rollout_cfg, model=model, tokenizer=tokenizer, model_path=reference)
    else:
        tokenizer = load_tokenizer(reference)
        options = {k: v for k, v in dict(rollout_cfg.options or {}).items() if k != "model_path"}
        engine = factory(dataclasses.replace(rollout_cfg, options=options), tokenizer=tokenizer,
                         model_path=reference)
    return rank_split.split(engine), tokenizer   # every rank samples its share
