"""``medssr eval compare RUN_A RUN_B [--json PATH] [--resamples N]``: is B better than A on the
same questions? A paired test per benchmark and for the average (``medssr_nemo.eval.compare``).

Each argument is a checkpoint's evaluation directory, or ``DIR:LABEL`` for one checkpoint of an
eval output directory or a pipeline run, e.g.::

    medssr eval compare runs/quickstart:base runs/quickstart:stage2
    medssr eval compare runs/ablation/eval/stage2 runs/medssr/eval/stage2 --json diff.json
"""

from __future__ import annotations

import argparse
import sys

from medssr_nemo.cli.common import run_guarded


def main(argv: list[str]) -> int:
    from medssr_nemo.eval import stats

    parser = argparse.ArgumentParser(prog="medssr eval compare", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_a", metavar="RUN_A", help="the reference: checkpoint eval directory or DIR:LABEL")
    parser.add_argument("run_b", metavar="RUN_B", help="the one compared with it (differences are B - A)")
    parser.add_argument("--json", metavar="PATH", help="also write the comparison as JSON")
    parser.add_argument("--resamples", type=int, default=stats.DEFAULT_RESAMPLES, help="bootstrap resamples")
    args = parser.parse_args(argv)
    if args.resamples < 100:
        parser.exit(2, "medssr eval compare: --resamples must be at least 100\n")

    def job() -> int:
        from medssr_nemo.eval.compare import compare, load_checkpoint, markdown, resolve

        result = compare(load_checkpoint(resolve(args.run_a)), load_checkpoint(resolve(args.run_b)), args.resamples)
        if args.json:
            from medssr_nemo.artifacts import write_json_atomic

            write_json_atomic(args.json, result)
        sys.stdout.write(markdown(result))
        return 0

    return run_guarded(job, "medssr eval compare")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
