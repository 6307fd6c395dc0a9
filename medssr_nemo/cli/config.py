"""``medssr config show [--config NAME] [overrides]``: print the resolved, validated config."""

from __future__ import annotations

import sys

from medssr_nemo.cli.common import config_parser, parse_config
from medssr_nemo.config import to_yaml


def main(argv: list[str]) -> int:
    if not argv or argv[0] != "show":
        print("usage: medssr config show [--config NAME|PATH] [key=value ...]", file=sys.stderr)
        return 2
    parser = config_parser("medssr config show", "print the resolved config")
    _, cfg = parse_config(parser, argv[1:])
    print(to_yaml(cfg), end="")
    return 0
