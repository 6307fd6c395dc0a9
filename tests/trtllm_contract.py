"""Checks an importable ``tensorrt_llm`` (the fake in tests/fakes, or a real install) against the
committed snapshot of TensorRT-LLM 1.2's API (tests/contracts/tensorrt_llm_1_2.json): every
signature (parameter names, kinds, defaults), which class holds which method, decorators, fields
with defaults, class constants, the values a config class accepts and refuses, and the memory
tags. Returns a list of differences, empty when it matches."""

from __future__ import annotations

import dataclasses
import enum
import importlib
import inspect
import json
from pathlib import Path
from typing import Any

SNAPSHOT = Path(__file__).parent / "contracts" / "tensorrt_llm_1_2.json"


def load_snapshot() -> dict[str, Any]:
    return json.loads(SNAPSHOT.read_text())


def resolve(dotted: str) -> Any:
    """The object a dotted path names: the longest importable module, then attributes."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(dotted)


def _params(obj: Any) -> list[list[Any]]:
    rows = []
    for p in inspect.signature(obj).parameters.values():
        rows.append([p.name, p.kind.name, None if p.default is inspect.Parameter.empty else repr(p.default)])
    return rows


def _signature_problems(entry: dict[str, Any], variants: list[dict[str, Any]]) -> list[str]:
    symbol = entry["symbol"]
    try:
        obj = resolve(symbol)
    except (ImportError, AttributeError) as err:
        return [f"{symbol}: missing ({err})"]
    actual = _params(obj)
    mismatches = []
    for variant in variants:
        expected = variant["params"]
        got = actual[: len(expected)] if entry.get("prefix") else actual
        if got == expected:
            break
        mismatches.append(f"expected {expected}")
    else:
        return [f"{symbol}: signature {actual} matches no snapshot variant ({'; '.join(mismatches)})"]
    problems = []
    if entry.get("static"):
        owner, _, name = symbol.rpartition(".")
        if not isinstance(inspect.getattr_static(resolve(owner), name), staticmethod):
            problems.append(f"{symbol}: expected a staticmethod")
    for decorator in entry.get("decorators", []):
        if not getattr(obj, "_control_action", False) or decorator.rpartition(".")[2] != "control_action_decorator":
            problems.append(f"{symbol}: not wrapped by {decorator}")
    return problems


def _field_defaults(cls: Any) -> dict[str, Any]:
    if dataclasses.is_dataclass(cls):
        return {f.name: (None if f.default is dataclasses.MISSING else repr(f.default)) for f in dataclasses.fields(cls)}
    fields = getattr(cls, "model_fields", None)  # pydantic, as the real llm_args are
    if fields:
        return {name: repr(f.default) for name, f in fields.items()}
    return {}


def _plain(value: Any) -> Any:
    """Enum keys and values as the snapshot writes them: tags by value, restore modes by name."""
    if isinstance(value, dict):
        return {_plain_key(k): _plain(v) for k, v in value.items()}
    return value.name if isinstance(value, enum.Enum) else value


def _plain_key(key: Any) -> Any:
    return key.value if isinstance(key, enum.Enum) else key


def _constant_problems(entry: dict[str, Any]) -> list[str]:
    cls = resolve(entry["class"])
    problems = []
    for name, expected in entry.get("class_constants", {}).items():
        actual = getattr(cls, name, None)
        if _plain(actual) != expected:
            problems.append(f"{entry['class']}.{name} is {_plain(actual)!r}, snapshot says {expected!r}")
    return problems


def _acceptance_problems(entry: dict[str, Any]) -> list[str]:
    """Construct the class with each value the snapshot lists: valid ones must pass, invalid ones
    must raise ValueError (pydantic's ValidationError is one)."""
    accepts = entry.get("accepts")
    if not accepts:
        return []
    cls, field = resolve(entry["class"]), accepts["field"]
    problems = []
    for value in accepts["valid"]:
        try:
            cls(**{field: value})
        except (ValueError, TypeError) as err:
            problems.append(f"{entry['class']}({field}={value!r}) refused: {err}")
    for value in accepts["invalid"]:
        try:
            cls(**{field: value})
        except ValueError:
            continue
        problems.append(f"{entry['class']}({field}={value!r}) accepted; the real one raises ValueError")
    return problems


def contract_problems(snapshot: dict[str, Any] | None = None) -> list[str]:
    snapshot = snapshot or load_snapshot()
    problems: list[str] = []
    for entry in snapshot["signatures"]:
        problems += _signature_problems(entry, entry.get("one_of") or [entry])
    for entry in snapshot["placement"]:
        cls = resolve(entry["class"])
        problems += [f"{entry['class']} lacks {m}" for m in entry["has"] if not hasattr(cls, m)]
        problems += [f"{entry['class']} should not define {m}" for m in entry["lacks"] if hasattr(cls, m)]
    for entry in snapshot["fields"]:
        fields = _field_defaults(resolve(entry["class"]))
        for name, default in entry["has"].items():
            if name not in fields:
                problems.append(f"{entry['class']} lacks field {name}")
            elif default is not None and fields[name] != default:
                problems.append(f"{entry['class']}.{name} defaults to {fields[name]}, snapshot says {default}")
        alternatives = entry.get("one_of_fields")
        if alternatives and not any(all(n in fields for n in alt) for alt in alternatives):
            problems.append(f"{entry['class']} has none of {alternatives}")
        problems += _constant_problems(entry) + _acceptance_problems(entry)
    tags = snapshot["memory_tags"]
    enum_cls = resolve(tags["enum"])
    if not (isinstance(enum_cls, type) and issubclass(enum_cls, enum.Enum)) or \
            sorted(m.value for m in enum_cls) != sorted(tags["values"]):
        problems.append(f"{tags['enum']} values differ from {tags['values']}")
    return problems
