"""``medssr label label.input=FILE [overrides]``: pseudo-label questions by the policy's majority vote
(the work: ``medssr_nemo.labelling.from_config``)."""

from __future__ import annotations

import sys

from medssr_nemo.cli.common import config_parser, parse_config, run_guarded


def main(argv: list[str]) -> int:
    parser = config_parser("medssr label", "pseudo-label question records by majority vote of the policy")
    _, cfg = parse_config(parser, argv)
    from medssr_nemo.labelling.from_config import label  # torch only once the arguments are good

    return run_guarded(lambda: label(cfg), "medssr label")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
