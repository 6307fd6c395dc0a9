"""Shared fixtures: tiny models of real architectures, the shared data root, and the fake
TensorRT-LLM (tests/fakes) in place of the real package."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from medssr_nemo.data.root import data_root


@pytest.fixture(scope="session")
def shared_data():
    return data_root()


@pytest.fixture(scope="session")
def tiny_llama():
    from medssr_nemo.models import make_tiny_model

    return make_tiny_model("llama", seed=0)


@pytest.fixture()
def fake_trtllm(monkeypatch):
    """``import tensorrt_llm`` gives the fake in tests/fakes for this test only (the plugin's
    worker extension is re-imported against it, then dropped)."""
    monkeypatch.syspath_prepend(str(Path(__file__).parent / "fakes"))
    for name in [m for m in sys.modules if m == "tensorrt_llm" or m.startswith("tensorrt_llm.")]:
        monkeypatch.delitem(sys.modules, name)
    import tensorrt_llm

    yield tensorrt_llm
    for name in [m for m in sys.modules if m == "tensorrt_llm" or m.startswith("tensorrt_llm.")
                 or m == "medssr_nemo.rollout.trtllm.worker_extension"]:
        sys.modules.pop(name, None)
