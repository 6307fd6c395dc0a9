"""``medssr plugins``: every registered plugin, by kind."""

from __future__ import annotations

from medssr_nemo import registry


def main(argv: list[str]) -> int:
    for kind in registry.KINDS:
        print(f"{kind}: {', '.join(registry.names(kind)) or '(none)'}")
    return 0
