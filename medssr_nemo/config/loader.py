"""Compose a run's config: YAML files under ``conf/`` (``defaults:`` lists, config groups such as
``model=qwen3_8b``), command-line overrides in Hydra's grammar (``key=value``, ``+new.key=value``,
``~key``), OmegaConf interpolation; then validate it into ``MedSSRConfig``.

Validation is strict: an unknown key, a wrong type or an out-of-range value is a ``ConfigError``
that names the key and says what is allowed.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib.resources
import typing
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
        detail = _omegaconf_cause(err)
        if detail is not None:
            raise ConfigError(_explain(detail)) from None
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


def _omegaconf_cause(err: BaseException) -> OmegaConfBaseException | None:
    """The OmegaConf error behind a Hydra composition error (it names the key), if any."""
    seen = err.__cause__ or err.__context__
    while seen is not None:
        if isinstance(seen, OmegaConfBaseException) and getattr(seen, "full_key", None):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _explain(err: OmegaConfBaseException) -> str:
    """One line for the user: which key, what was wrong, what is allowed there."""
    key = getattr(err, "full_key", None) or "?"
    message = str(err).split("\n")[0]
    parent_type = getattr(err, "object_type", None)
    section = parent_type if parent_type is not None and dataclasses.is_dataclass(parent_type) else None
    if section is not None and "not in" in message:
        allowed = [f.name for f in dataclasses.fields(section)]
        leaf = key.rsplit(".", 1)[-1]
        close = difflib.get_close_matches(leaf, allowed, n=1)
        parent = key.rsplit(".", 1)[0] if "." in key else ""
        hint = f" (did you mean {parent + '.' if parent else ''}{close[0]}?)" if close else ""
        return f"unknown config key {key!r}{hint}; allowed keys in {parent or 'the top level'}: {', '.join(allowed)}"
    if section is not None and any(t in message for t in ("could not be converted", "Invalid value assigned",
                                                          "is not a valid")):
        leaf = key.rsplit(".", 1)[-1]
        expected = _type_name(_field_types(section).get(leaf))
        value = message.split("'")[1] if message.startswith("Value '") else None
        got = f"got {value!r}" if value is not None else message.rstrip(".")
        return f"config key {key!r} expects {expected}; {got}"
    return f"config key {key!r}: {message}"


def _field_types(section: type) -> dict[str, Any]:
    try:
        return typing.get_type_hints(section)
    except (NameError, TypeError):
        return {}


def _type_name(annotation: Any) -> str:
    """A type as a user writes it on the command line."""
    if annotation is None:
        return "another type"
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Union and type(None) in args:
        inner = [a for a in args if a is not type(None)]
        return f"{_type_name(inner[0]) if len(inner) == 1 else 'a value'} or null"
    if origin in (list, tuple):
        item = {str: "strings", int: "integers", float: "numbers"}.get(args[0], "values") if args else "values"
        return f"a list of {item} such as [a,b]"
    if origin is dict:
        return "a mapping such as {key: value}"
    names = {float: "a number (float)", int: "an integer", bool: "true or false", str: "a string"}
    return names.get(annotation, getattr(annotation, "__name__", str(annotation)))
