"""Shared fixtures: tiny models of real architectures, and the shared data root."""

from __future__ import annotations

import pytest

from medssr_nemo.paths import data_root


@pytest.fixture(scope="session")
def shared_data():
    return data_root()


@pytest.fixture(scope="session")
def tiny_llama():
    from medssr_nemo.models import make_tiny_model

    return make_tiny_model("llama", seed=0)
