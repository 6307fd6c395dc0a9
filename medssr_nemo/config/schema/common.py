"""Shared helpers for the typed config sections."""

from __future__ import annotations

from typing import Any, Iterable


class ConfigValueError(ValueError):
    """A config value is out of range or not among the allowed choices."""


def check_range(key: str, value: float, low: float | None = None, high: float | None = None,
                low_open: bool = False, high_open: bool = False) -> None:
    """Raise ``ConfigValueError`` naming ``key`` unless ``value`` lies in the interval."""
    bad = (low is not None and (value <= low if low_open else value < low)) or (
        high is not None and (value >= high if high_open else value > high))
    if bad:
        left = "(" if low_open else "["
        right = ")" if high_open else "]"
        interval = f"{left}{'-inf' if low is None else low}, {'inf' if high is None else high}{right}"
        raise ConfigValueError(f"{key}={value!r} is out of range; allowed: {interval}")


def check_choice(key: str, value: Any, allowed: Iterable[Any]) -> None:
    allowed = list(allowed)
    if value not in allowed:
        raise ConfigValueError(f"{key}={value!r} is not allowed; choose one of {allowed}")
