"""``medssr data real [overrides]``: the human-annotated pools as decontaminated, gold-labelled
question records (the work: ``medssr_nemo.data.prepare``)."""

from __future__ import annotations

import sys

from medssr_nemo.cli.common import config_parser, parse_config, run_guarded
from medssr_nemo.data.prepare import prepare_real_data

USAGE = ("usage: medssr data real [--config NAME|PATH] [key=value ...]\n"
         "       medssr data download [--only eval|train|knowledge|NAME...] [--dest DIR]\n"
         "       medssr data status [--only NAME...]")


def main(argv: list[str]) -> int:
    if argv and argv[0] in ("download", "status"):
        from medssr_nemo.cli import data_fetch

        return (data_fetch.download_main if argv[0] == "download" else data_fetch.status_main)(argv[1:])
    if argv and argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0
    if not argv or argv[0] != "real":
        print(USAGE, file=sys.stderr)
        return 2
    parser = config_parser("medssr data real", "decontaminated human-annotated training records")
    _, cfg = parse_config(parser, argv[1:])
    return run_guarded(lambda: prepare_real_data(cfg), "medssr data real")
