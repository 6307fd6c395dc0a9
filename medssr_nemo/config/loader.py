"""Compose a run's config: YAML files under ``conf/`` (``defaults:`` lists, config groups such as
``model=qwen3_8b``), command-line overrides in Hydra's grammar (``key=value``, ``+new.key=value``,
``~key``), OmegaConf interpolation; then validate it into ``MedSSRConfig``.

Validation is strict: an unknown key, a wrong type or an out-of-range value is a ``ConfigError``
that names the key and says what is allowed.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
from pathlib import Path
from typing import Any, Sequence

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from medssr_nemo.config.schema import MedSSRConfig

DEFAULT_CONFIG = "base"
SCHEMA_NAME = "medssr_schema"  # base.yaml lists it first in its defaults, so every key is typed


class ConfigError(ValueError):
    """The composed config is invalid; the message names the key and what is allowed."""


def conf_dir() -> Path:
    """The directory of the built-in YAML files (the installed ``medssr_nemo_conf`` package)."""
    return Path(str(importlib.resources.files("medssr_nemo_conf")))


def compose(config: str = DEFAULT_CONFIG, overrides: Sequence[str] = ()) -> DictConfig:
    """The raw composed config (not validated): ``config`` is a name under ``conf/`` or a path
    to a user YAML file, which may list built-in files in its ``defaults:``."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException

    path = Path(config)
    if path.suffix in (".yaml", ".yml"):
        if not path.exists():
            raise ConfigError(f"config file not found: {path}")
        directory, name = path.resolve().parent, path.stem
        extra = [f"hydra.searchpath=[file://{conf_dir()}]"]
    else:
        directory, name, extra = conf_dir(), config, []
        if not (directory / f"{name}.yaml").exists():
            known = sorted(p.stem for p in directory.glob("*.yaml"))
            raise ConfigError(f"unknown config {config!r}; built-in configs: {known}, or give a path to a .yaml file")
    _store_schema()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(directory), version_base=None):
            composed = hydra_compose(config_name=name, overrides=[*extra, *overrides])
    except HydraException as err:
        raise ConfigError(f"cannot compose config {config!r} with overrides {list(overrides)}: {err}") from None
    finally:
        GlobalHydra.instance().clear()
    composed = OmegaConf.masked_copy(composed, [k for k in composed if k != "hydra"]) if "hydra" in composed else composed
    return composed


def _store_schema() -> None:
    """Register the dataclass schema with Hydra: composing on top of it gives every key a type
    and a default, so ``key=value`` works for any schema key and a typo fails at compose time."""
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(name=SCHEMA_NAME, node=MedSSRConfig)


def validate(raw: DictConfig | dict[str, Any]) -> MedSSRConfig:
    """Check ``raw`` against the schema and build the typed config."""
    schema = OmegaConf.structured(MedSSRConfig)
    if isinstance(raw, DictConfig):  # plain data, so extra keys Hydra let in are checked again
        raw = OmegaConf.to_container(raw, resolve=False)
    try:
        merged = OmegaConf.merge(schema, raw)
        OmegaConf.resolve(merged)
        typed = OmegaConf.to_object(merged)
    except OmegaConfBaseException as err:
        raise ConfigError(_explain(err)) from None
    except (ValueError, TypeError) as err:  # range and choice checks in __post_init__
        raise ConfigError(str(err)) from None
    assert isinstance(typed, MedSSRConfig)
    return typed


def load_config(config: str = DEFAULT_CONFIG, overrides: Sequence[str] = ()) -> MedSSRConfig:
    return validate(compose(config, overrides))


def to_yaml(cfg: MedSSRConfig | DictConfig) -> str:
    """The resolved config as YAML (what ``medssr config show`` prints and runs store)."""
    node = OmegaConf.structured(cfg) if dataclasses.is_dataclass(cfg) else cfg
    return OmegaConf.to_yaml(node, resolve=True)


def _explain(err: OmegaConfBaseException) -> str:
    key = getattr(err, "full_key", None) or "?"
    message = str(err).split("\n")[0]
    text = f"config key {key!r}: {message}"
    parent_type = getattr(err, "object_type", None)
    if parent_type is not None and dataclasses.is_dataclass(parent_type) and "not in" in message:
        allowed = ", ".join(f.name for f in dataclasses.fields(parent_type))
        text += f"; allowed keys here: {allowed} (use +{key}=... only for free-form sections)"
    return text
