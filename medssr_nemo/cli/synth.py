"""``medssr synth [overrides]``: synthesize multiple-choice questions with a controlled mix.

Example: ``medssr synth synthesis.synthesizer=kg synthesis.alpha=0.3 synthesis.num_questions=2000
synthesis.seed=7 output_dir=runs/synth``. Writes ``<output_dir>/<synthesis.output_name>.jsonl``
(question records) and ``<name>.card.json`` (counts, achieved vs target mix, filter report,
config, input hashes, the knowledge-base audit). Interrupted runs resume from their last
finished chunk.

``medssr synth audit FILE [--out REPORT.json] [overrides]`` audits any question JSONL against the
merged knowledge base (``synthesis.knowledge``, margin ``synthesis.distinct_margin``): per question
type, the share of contradicted keys, leakage, ambiguity and incoherent patients, and the mix
(see docs/synthesis.md).
"""

from __future__ import annotations

import logging
import sys
import time

from medssr_nemo.cli.common import config_parser, parse_config, run_guarded


def main(argv: list[str]) -> int:
    if argv and argv[0] == "audit":
        return audit_main(argv[1:])
    parser = config_parser("medssr synth", "synthesize questions from a knowledge base")
    _, cfg = parse_config(parser, argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    return run_guarded(lambda: _run(cfg), "medssr synth")


def _run(cfg) -> int:
    from medssr_nemo.synthesis.from_config import run_synthesis

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


def audit_main(argv: list[str]) -> int:
    parser = config_parser("medssr synth audit", "audit a synthetic question JSONL against the merged knowledge base")
    parser.add_argument("--file", required=True, help="question JSONL (one QuestionRecord per line)")
    parser.add_argument("--out", default=None, help="write the full report (JSON) here; default FILE.audit.json")
    parser.add_argument("--verdicts", action="store_true", help="also list every question's verdict in the report")
    # FILE is the first bare argument that is not a key=value override
    files = [i for i, a in enumerate(argv) if not a.startswith("-") and "=" not in a
             and (i == 0 or argv[i - 1] not in ("--out", "--config"))]
    if files:
        argv = [*argv[:files[0]], "--file", argv[files[0]], *argv[files[0] + 1:]]
    args, cfg = parse_config(parser, argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    return run_guarded(lambda: _audit(cfg, args), "medssr synth audit")


def _audit(cfg, args) -> int:
    import json
    from pathlib import Path

    from medssr_nemo.records import read_records
    from medssr_nemo.synthesis.audit import audit_records, auditor_for, verdicts_of
    from medssr_nemo.synthesis.from_config import build_knowledge

    path = Path(args.file)
    if not path.exists():
        raise FileNotFoundError(f"no question file at {path}")
    records = read_records(path)
    auditor = auditor_for(build_knowledge(cfg), cfg.synthesis.distinct_margin, cfg.synthesis.num_options)
    if auditor is None:
        raise ValueError(f"synthesis.knowledge={cfg.synthesis.knowledge!r} has no disease profiles and ontology "
                         "to audit against (use 'hpo')")
    report = audit_records(records, auditor)
    if args.verdicts:
        report["verdicts"] = [v.to_dict() for v in verdicts_of(records, auditor)]
    out = Path(args.out) if args.out else path.with_suffix(".audit.json")
    out.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    print(f"audited {report['questions']} questions ({report['checkable']} checkable against the knowledge base)")
    print(f"{'type':<14}{'n':>6}{'checked':>9}{'contradicted':>14}{'leakage':>9}{'ambiguous':>11}{'incoherent':>12}"
          f"{'unresolved':>12}")
    for qtype, row in report["by_question_type"].items():
        shares = [f"{row[c + '_share']:.3f}" if row[c + '_share'] is not None else "-"
                  for c in ("contradicted", "leakage", "ambiguous", "incoherent")]
        print(f"{qtype:<14}{row['questions']:>6}{row['checkable']:>9}{shares[0]:>14}{shares[1]:>9}"
              f"{shares[2]:>11}{shares[3]:>12}{row['unresolved_options']:>12}")
    print("(unresolved: options mapping to no ontology term, so not checked)")
    print(f"rare share {report['mix']['rare_share']}; report: {out}")
    return 0
