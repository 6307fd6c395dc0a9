"""``medssr synth [overrides]``: synthesize multiple-choice questions with a controlled mix.

Example: ``medssr synth synthesis.synthesizer=kg synthesis.alpha=0.3 synthesis.num_questions=2000
synthesis.seed=7 output_dir=runs/synth``. Writes ``<output_dir>/<synthesis.output_name>.jsonl``
(question records) and ``<name>.card.json`` (counts, achieved vs target mix, filter report,
config, input hashes). Interrupted runs resume from their last finished chunk.
"""

from __future__ import annotations

import logging
import sys
import time

from medssr_nemo.cli.common import config_parser, parse_config, run_guarded


def main(argv: list[str]) -> int:
    parser = config_parser("medssr synth", "synthesize questions from a knowledge base")
    _, cfg = parse_config(parser, argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    return run_guarded(lambda: _run(cfg), "medssr synth")


def _run(cfg) -> int:
    from medssr_nemo.synthesis.run import run_synthesis

    started = time.perf_counter()
    out = run_synthesis(cfg)
    if out.skipped:
        print(f"medssr synth: {out.records_path} is up to date (same config and inputs); nothing to do")
        return 0
    card = out.card
    dist, counts = card["distribution"], card["counts"]
    print(f"wrote {counts['written']} of {counts['planned']} planned questions to {out.records_path} "
          f"in {time.perf_counter() - started:.1f} s")
    print(f"rare share {dist['rare']['achieved']:.3f} (target {dist['rare']['target']:.3f}); "
          + "; ".join(f"{d} TV {dist[d]['tv_distance']:.3f}" for d in ("question_type", "difficulty", "category")
                      if dist[d].get("tv_distance") is not None))
    print(f"filters dropped {card['filters']['dropped_total']}; generation failures "
          f"{card['generation_failures']['counts']}; given up {counts['given_up']}")
    print(f"card: {out.card_path}")
    return 0
