"""Evaluation and pseudo-labelling sample the checkpoint they were asked about, and load a
transformers model only for an engine that runs on one (rollout/for_checkpoint.py): an engine
that loads its own weights (TensorRT-LLM) gets the checkpoint's path and its tokenizer, never a
second full copy of the model, and never the training-only ``rollout.options.model_path``."""

from __future__ import annotations

import dataclasses

import pytest

from medssr_nemo import registry
from medssr_nemo.config import load_config
from medssr_nemo.eval.runner import default_policy_loader
from medssr_nemo.labelling.from_config import build_engine
from medssr_nemo.models import save_tiny_model
from medssr_nemo.rollout import for_checkpoint
from medssr_nemo.rollout.interfaces import engine_factory


class Recorded:
    def __init__(self, **seen):
        self.seen = seen


@pytest.fixture
def own_weights_engine(monkeypatch):
    """A registered engine that loads its own weights; records what it was built with."""
    @engine_factory(needs_policy_module=False)
    def build(rollout_cfg, model=None, tokenizer=None, model_path=None, **_):
        return Recorded(model=model, tokenizer=tokenizer, model_path=model_path, options=dict(rollout_cfg.options))

    original = registry.get
    monkeypatch.setattr(registry, "get", lambda kind, name: build if (kind, name) == ("rollout_engine", "own")
                        else original(kind, name))
    monkeypatch.setattr(for_checkpoint, "load_causal_lm",
                        lambda *a, **k: pytest.fail("a transformers model was loaded for an engine that needs none"))


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return str(save_tiny_model(tmp_path_factory.mktemp("ckpt") / "qwen3", "qwen3", seed=0))


def test_an_engine_with_its_own_weights_gets_the_evaluated_checkpoint_and_no_model(own_weights_engine, tiny_dir):
    cfg = load_config("base", ["rollout.engine=own", "+rollout.options.model_path=/training/start", "+rollout.options.keep=1"])
    engine, tokenizer = default_policy_loader(cfg)(tiny_dir)
    assert engine.seen["model"] is None and engine.seen["tokenizer"] is tokenizer
    assert engine.seen["model_path"] == tiny_dir
    assert engine.seen["options"] == {"keep": 1}       # the training engine's start checkpoint is dropped
    labelling = build_engine(dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, path=tiny_dir)))[0]
    assert labelling.seen["model"] is None and labelling.seen["model_path"] == tiny_dir


def test_the_inprocess_engine_samples_the_loaded_checkpoint(tiny_dir):
    cfg = load_config("base", ["rollout.engine=inprocess"])
    engine, tokenizer = default_policy_loader(cfg)(tiny_dir)
    assert engine.model.config._name_or_path == tiny_dir
    assert tokenizer is engine.tokenizer
