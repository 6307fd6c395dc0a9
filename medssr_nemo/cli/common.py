"""What every sub-command shares: ``--config`` plus Hydra-style overrides, and clean errors."""

from __future__ import annotations

import argparse
import sys
from typing import Callable, Sequence

from medssr_nemo.config import ConfigError, MedSSRConfig, load_config


def config_parser(prog: str, description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--config", default="base",
                        help="a config name under conf/ (base, quickstart, ...) or a path to a YAML file")
    parser.add_argument("overrides", nargs="*",
                        help="key=value overrides (Hydra grammar: a.b=1, +new.key=x, ~key, model=qwen3_8b)")
    return parser


def parse_config(parser: argparse.ArgumentParser, argv: Sequence[str]) -> tuple[argparse.Namespace, MedSSRConfig]:
    args = parser.parse_args(list(argv))
    try:
        cfg = load_config(args.config, args.overrides)
    except ConfigError as err:
        parser.exit(2, f"{parser.prog}: config error: {err}\n")
    return args, cfg


def run_guarded(job: Callable[[], int | None], prog: str) -> int:
    """Run ``job``; user-facing errors (bad files, bad values) print one clear line, exit 1."""
    try:
        return int(job() or 0)
    except FileNotFoundError as err:
        from medssr_nemo.data.hints import with_fetch_hint

        print(f"{prog}: error: {with_fetch_hint(err)}", file=sys.stderr)
        return 1
    except (ConfigError, ValueError, LookupError) as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 1
