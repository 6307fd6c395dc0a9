"""Plugin registry: one table per kind, filled three ways.

1. Built-ins and third-party modules decorate a class or function with ``@register(kind, name)``.
2. Installed packages declare entry points in the group ``medssr_nemo.plugins``. An entry point
   named ``<kind>.<name>`` (e.g. ``reward_source.my_reward = my_pkg.rewards:MyReward``) registers
   that object under that kind and name; any other entry point names a module that is imported so
   its ``@register`` decorators run.
3. A config may name a dotted path ``package.module:attr`` (or ``package.module.attr``) instead
   of a registered name, for one-off code.

An unknown name is an error that lists the known names of that kind.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from typing import Any, Callable, TypeVar

KINDS = (
    "reward_source",
    "synthesizer",
    "knowledge_source",
    "rollout_engine",
    "policy_backend",
    "benchmark",
)
ENTRY_POINT_GROUP = "medssr_nemo.plugins"
BUILTIN_PLUGIN_PACKAGE = "medssr_nemo_plugins"

_TABLES: dict[str, dict[str, Any]] = {kind: {} for kind in KINDS}
_loaded = False

T = TypeVar("T")


class PluginError(LookupError):
    """A plugin name, kind or entry point could not be resolved."""


def _check_kind(kind: str) -> None:
    if kind not in _TABLES:
        raise PluginError(f"unknown plugin kind {kind!r}; kinds: {', '.join(KINDS)}")


def register(kind: str, name: str) -> Callable[[T], T]:
    """Decorator: make ``obj`` available as ``name`` among plugins of ``kind``."""
    _check_kind(kind)

    def wrap(obj: T) -> T:
        existing = _TABLES[kind].get(name)
        if existing is not None and existing is not obj:
            raise PluginError(
                f"{kind} {name!r} is registered twice: {_describe(existing)} and {_describe(obj)}"
            )
        _TABLES[kind][name] = obj
        return obj

    return wrap


def _describe(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


def load_plugins() -> None:
    """Import the built-in plugins and every installed entry point (once)."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    importlib.import_module(BUILTIN_PLUGIN_PACKAGE)
    for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        kind, _, name = entry_point.name.partition(".")
        try:
            obj = entry_point.load()
        except Exception as err:  # a broken third-party plugin must say which one it is
            raise PluginError(
                f"entry point {entry_point.name!r} = {entry_point.value!r} "
                f"(group {ENTRY_POINT_GROUP}) failed to load: {err}"
            ) from err
        if name and kind in _TABLES:
            register(kind, name)(obj)


def get(kind: str, name: str) -> Any:
    """The plugin registered as ``name`` of ``kind``, or the object at a dotted path."""
    _check_kind(kind)
    load_plugins()
    if name in _TABLES[kind]:
        return _TABLES[kind][name]
    if "." in name or ":" in name:
        return _import_dotted(name, kind)
    known = ", ".join(sorted(_TABLES[kind])) or "(none)"
    raise PluginError(f"unknown {kind} {name!r}; known: {known}; or give a dotted path 'pkg.module:attr'")


def names(kind: str) -> list[str]:
    _check_kind(kind)
    load_plugins()
    return sorted(_TABLES[kind])


def table_registrar(table: dict[str, T], what: str) -> Callable[[str], Callable[[T], T]]:
    """``@register_x(name)`` for a plain name -> object table (the algorithm registries in
    ``grpo/``); registering a name twice is an error."""
    def register_in_table(name: str) -> Callable[[T], T]:
        def wrap(obj: T) -> T:
            if name in table:
                raise ValueError(f"{what} {name!r} is registered twice")
            table[name] = obj
            return obj

        return wrap

    return register_in_table


def table_entry(table: dict[str, T], name: str, what: str) -> T:
    """``table[name]``, or a KeyError listing the known names."""
    if name not in table:
        raise KeyError(f"unknown {what} {name!r}; known: {sorted(table)}")
    return table[name]


def _import_dotted(path: str, kind: str) -> Any:
    module_name, sep, attr = path.partition(":")
    if not sep:
        module_name, _, attr = path.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise PluginError(f"{kind} {path!r}: cannot import module {module_name!r} ({err})") from err
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise PluginError(f"{kind} {path!r}: module {module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    return obj
