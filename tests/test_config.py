"""Config composition, overrides and validation errors (issue 2: configuration)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from medssr_nemo.config import ConfigError, compose, load_config, to_yaml


def test_base_composes_with_model_group_and_defaults():
    cfg = load_config("base")
    assert cfg.model.path == "embedded:smollm2-135m-instruct"
    assert cfg.grpo.group_size == 8 and cfg.grpo.dual_clip == 3.0 and cfg.grpo.kl_estimator == "k3"


def test_quickstart_inherits_base_and_overrides_it():
    cfg = load_config("quickstart")
    assert cfg.grpo.group_size == 4            # set by quickstart
    assert cfg.grpo.clip_low == 0.2             # inherited from base
    assert [t.name for t in cfg.reward.sources["gold"]] == ["gold", "format"]


def test_command_line_overrides_use_hydra_grammar():
    cfg = load_config("base", ["grpo.group_size=3", "policy.betas=[0.8,0.95]", "+policy.options.flash=true",
                               "reward.sources.gold=[{name: format, weight: 2.0}]"])
    assert cfg.grpo.group_size == 3
    assert cfg.policy.betas == [0.8, 0.95]
    assert cfg.policy.options == {"flash": True}
    assert cfg.reward.sources["gold"][0].name == "format" and cfg.reward.sources["gold"][0].weight == 2.0


def test_interpolation_resolves(tmp_path):
    user = tmp_path / "mine.yaml"
    user.write_text("defaults:\n  - base\n  - _self_\noutput_dir: /tmp/runs/${model.name}\n")
    cfg = load_config(str(user))
    assert cfg.output_dir == "/tmp/runs/smollm2-135m"
    assert cfg.grpo.group_size == 8            # the built-in base came through the user's defaults


@pytest.mark.parametrize("override, expected", [
    (["+grpo.bogus=1"], "grpo.bogus"),                       # unknown key
    (["grpo.group_size=many"], "grpo.group_size"),           # wrong type
    (["grpo.clip_low=1.5"], "grpo.clip_low"),                # out of range
    (["grpo.kl_estimator=k7"], "grpo.kl_estimator"),         # not an allowed choice
    (["policy.schedule=linear"], "policy.schedule"),
    (["model=no_such_model"], "no_such_model"),              # unknown config group option
    (["rollout.top_p=0"], "rollout.top_p"),
])
def test_bad_values_name_the_key(override, expected):
    with pytest.raises(ConfigError, match=expected.replace(".", r"\.")):
        load_config("base", override)


def test_unknown_key_error_lists_allowed_keys():
    with pytest.raises(ConfigError) as err:
        load_config("base", ["+train.stepz=3"])
    assert "allowed keys here" in str(err.value) and "steps" in str(err.value)


def test_unknown_config_name_lists_builtins():
    with pytest.raises(ConfigError, match="quickstart"):
        compose("no_such_config")


def test_config_show_prints_resolved_yaml():
    out = subprocess.run([sys.executable, "-m", "medssr_nemo.cli.main", "config", "show", "--config", "quickstart",
                          "grpo.group_size=5"], capture_output=True, text=True, check=True).stdout
    assert "group_size: 5" in out and "path: embedded:smollm2-135m-instruct" in out


def test_config_show_rejects_bad_override_with_exit_2():
    proc = subprocess.run([sys.executable, "-m", "medssr_nemo.cli.main", "config", "show", "grpo.clip_high=-1"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "grpo.clip_high" in proc.stderr


def test_yaml_round_trip_is_stable():
    cfg = load_config("quickstart")
    assert to_yaml(cfg) == to_yaml(load_config("quickstart"))
