"""``medssr label label.input=FILE [overrides]``: pseudo-label questions by the policy's majority vote
(the work: ``medssr_nemo.labelling.from_config``). Under torchrun every rank samples its share of
the prompts and the main rank writes the files (rollout/rank_split.py)."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from medssr_nemo.cli.common import config_parser, parse_config, run_guarded


def main(argv: list[str]) -> int:
    parser = config_parser("medssr label", "pseudo-label question records by majority vote of the policy")
    _, cfg = parse_config(parser, argv)
    from medssr_nemo import distributed  # torch only once the arguments are good
    from medssr_nemo.labelling.from_config import label
    from medssr_nemo.rollout.rank_split import command_on_every_rank

    def job() -> int:
        with command_on_every_rank(Path(cfg.output_dir)) as where:
            return label(dataclasses.replace(cfg, output_dir=str(where)), progress=distributed.is_main())

    return run_guarded(job, "medssr label")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
