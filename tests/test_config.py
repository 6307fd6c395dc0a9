"""Config composition, overrides and validation errors."""

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
    assert "allowed keys in train:" in str(err.value) and "steps" in str(err.value)


def test_a_misspelled_key_lists_the_allowed_keys_without_needing_plus():
    """On main a misspelled key without ``+`` only said 'To append to your config use +...'."""
    with pytest.raises(ConfigError) as err:
        load_config("base", ["eval.temprature=0.5"])
    text = str(err.value)
    assert "unknown config key 'eval.temprature' (did you mean eval.temperature?)" in text
    assert "allowed keys in eval:" in text and "num_samples" in text and "+eval" not in text


@pytest.mark.parametrize("override, expected", [
    ("eval.temperature=abc", "config key 'eval.temperature' expects a number (float); got 'abc'"),
    ("eval.num_samples=1.5", "config key 'eval.num_samples' expects an integer; got '1.5'"),
    ("eval.limit=abc", "config key 'eval.limit' expects an integer or null; got 'abc'"),
    ("eval.greedy=maybe", "config key 'eval.greedy' expects true or false; got 'maybe'"),
    ("eval.benchmarks=medqa", "config key 'eval.benchmarks' expects a list of strings such as [a,b]"),
])
def test_a_wrong_type_override_names_the_expected_type(override, expected):
    """On main these said only 'Error merging override <key>=<value>'."""
    with pytest.raises(ConfigError) as err:
        load_config("base", [override])
    assert expected in str(err.value)


def test_answer_extraction_is_one_setting_overridable_per_stage():
    from medssr_nemo.config.schema.answer import answer_extraction

    cfg = load_config("base", [])
    assert [answer_extraction(cfg, s) for s in ("eval", "reward", "label")] == ["paper"] * 3
    cfg = load_config("base", ["answer.extraction=lenient", "eval.answer_extraction=paper"])
    assert [answer_extraction(cfg, s) for s in ("eval", "reward", "label")] == ["paper", "lenient", "lenient"]
    with pytest.raises(ConfigError, match="answer.extraction='strict' is not allowed"):
        load_config("base", ["answer.extraction=strict"])
    with pytest.raises(ConfigError, match="label.answer_extraction='x' is not allowed"):
        load_config("base", ["label.answer_extraction=x"])


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


# conf/model file -> (hub id, tensor parallel size); TP from docs/cluster.md's layouts
PAPER_SCALE_MODELS = {
    "qwen3_1_7b": ("Qwen/Qwen3-1.7B-Base", 1), "qwen3_4b": ("Qwen/Qwen3-4B-Base", 1), "qwen3_8b": ("Qwen/Qwen3-8B-Base", 2),
    "qwen3_14b": ("Qwen/Qwen3-14B-Base", 4), "llama3_1_8b": ("meta-llama/Llama-3.1-8B-Instruct", 2),
}


@pytest.mark.parametrize("name", sorted(PAPER_SCALE_MODELS))
def test_each_model_size_composes_with_paper_scale_settings(name):
    from medssr_nemo.pipeline.report import scale_gaps
    from medssr_nemo.pipeline.steps import STEPS

    cfg = load_config("base", [f"model={name}"])
    path, tp = PAPER_SCALE_MODELS[name]
    assert cfg.model.path == path and cfg.model.tensor_parallel_size == tp and cfg.model.dtype == "bfloat16"
    # the GRPO defaults (verl 0.3.1 / our choice) and the paper's evaluation protocol
    assert (cfg.grpo.group_size, cfg.grpo.clip_low, cfg.grpo.clip_high, cfg.grpo.dual_clip) == (8, 0.2, 0.2, 3.0)
    assert cfg.grpo.loss_aggregation == "token-mean" and 0.001 <= cfg.grpo.kl_coef <= 0.005 and cfg.grpo.ppo_epochs == 1
    assert (cfg.eval.max_new_tokens, cfg.eval.num_samples, cfg.eval.temperature, cfg.eval.limit) == (2048, 4, 0.6, None)
    assert len(cfg.eval.benchmarks) == 10 and cfg.rollout.max_new_tokens == 2048
    # the whole pipeline runs, and the report would not call this a demonstration
    assert cfg.pipeline.stage1.enabled and cfg.pipeline.stage2.enabled
    assert all(step.disabled_reason(cfg) is None for step in STEPS)
    from medssr_nemo.eval.suite import STANDS_IN, raredis_available

    assert scale_gaps(cfg) == ([] if raredis_available() else [STANDS_IN])   # RareDis-Sub: hub only
    # the quickstart's demonstration sizes win over the model file's when both are named
    quick = load_config("quickstart", [f"model={name}"])
    assert quick.model.path == path and quick.pipeline.stage1.steps == 6 and scale_gaps(quick)


def test_the_schedule_choices_are_the_schedules_the_policy_module_defines(monkeypatch):
    from medssr_nemo.policy import schedules

    with pytest.raises(ConfigError, match=r"\['constant', 'cosine'\]"):
        load_config("base", ["policy.schedule=linear"])
    # a schedule added to policy/schedules.py is selectable without touching the schema
    monkeypatch.setattr(schedules, "SCHEDULES", (*schedules.SCHEDULES, "linear"))
    assert load_config("base", ["policy.schedule=linear"]).policy.schedule == "linear"
