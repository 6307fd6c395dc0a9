"""Plugin registry: built-ins, dotted paths, clear errors, and a third-party package installed
into an environment and used from config alone."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from medssr_nemo import registry
from medssr_nemo.registry import PluginError


def test_builtin_reward_sources_are_registered():
    assert {"gold", "pseudo_label", "format", "composite"} <= set(registry.names("reward_source"))


def test_unknown_name_lists_known_ones():
    with pytest.raises(PluginError, match=r"unknown reward_source 'nope'; known: .*gold"):
        registry.get("reward_source", "nope")


def test_unknown_kind_is_an_error():
    with pytest.raises(PluginError, match="unknown plugin kind 'rewards'"):
        registry.get("rewards", "gold")


def test_dotted_path_resolves_without_registration():
    from medssr_nemo.answers import extract_answer

    assert registry.get("reward_source", "medssr_nemo.answers:extract_answer") is extract_answer
    assert registry.get("reward_source", "medssr_nemo.answers.extract_answer") is extract_answer


def test_dotted_path_errors_name_the_missing_part():
    with pytest.raises(PluginError, match="has no attribute 'missing'"):
        registry.get("reward_source", "medssr_nemo.answers:missing")


def test_double_registration_of_a_name_is_refused():
    registry.register("benchmark", "_test_dup")(object)
    with pytest.raises(PluginError, match="registered twice"):
        registry.register("benchmark", "_test_dup")(int)


def _write_plugin_package(root: Path) -> Path:
    package = root / "src"
    (package / "medssr_length_reward").mkdir(parents=True)
    (package / "medssr_length_reward" / "__init__.py").write_text(textwrap.dedent('''
        """A third-party reward: 1.0 for completions shorter than `max_chars`."""
        from medssr_nemo.rewards.interfaces import RewardSource, ScoredGroup

        class ShortAnswer(RewardSource):
            name = "short_answer"

            def __init__(self, max_chars: int = 10):
                self.max_chars = max_chars

            def score(self, group):
                return ScoredGroup([1.0 if len(t) <= self.max_chars else 0.0 for t in group.texts])
    '''))
    (package / "pyproject.toml").write_text(textwrap.dedent('''
        [build-system]
        requires = ["setuptools"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "medssr-length-reward"
        version = "0.0.1"

        [project.entry-points."medssr_nemo.plugins"]
        "reward_source.short_answer" = "medssr_length_reward:ShortAnswer"
    '''))
    return package


def test_installed_third_party_plugin_is_used_from_config_alone(tmp_path):
    package = _write_plugin_package(tmp_path)
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--target", str(site), str(package)], check=True, capture_output=True)
    # A fresh interpreter with the plugin's install location on its path: only config names it.
    script = textwrap.dedent('''
        from medssr_nemo.config import load_config
        from medssr_nemo.records import QuestionRecord
        from medssr_nemo.rewards.composite import RewardRouter
        from medssr_nemo.rewards.interfaces import GroupCompletions

        cfg = load_config("base", ["reward.sources.gold=[{name: short_answer, weight: 2.0, options: {max_chars: 5}}]"])
        router = RewardRouter.from_config(cfg.reward)
        record = QuestionRecord(id="q1", question="?", options=["x", "y"], gold="A")
        source, scored = router.score(GroupCompletions(record, "p", ["tiny", "far too long"], ["A", None]))
        print(source, scored.rewards)
    ''')
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "gold [2.0, 0.0]"
