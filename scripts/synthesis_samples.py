"""Print N questions of a synthetic set, sampled with a fixed seed, verbatim, each with the
audit's verdict (markdown). Used for the samples in docs/synthesis.md:

    python scripts/synthesis_samples.py runs/synth/synthetic.jsonl --n 40 --seed 0
"""

from __future__ import annotations

import argparse
import random

from medssr_nemo.knowledge.hpo import HPOKnowledge
from medssr_nemo.records import read_records
from medssr_nemo.synthesis.audit import auditor_for


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file")
    parser.add_argument("--n", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--margin", type=float, default=2.0)
    parser.add_argument("--all", action="store_true", help="sample seed copies too (default: knowledge-base questions)")
    args = parser.parse_args()
    records = [r for r in read_records(args.file) if args.all or r.rare]
    sample = sorted(random.Random(args.seed).sample(records, min(args.n, len(records))), key=lambda r: r.id)
    auditor = auditor_for(HPOKnowledge.load(), args.margin)
    for i, record in enumerate(sample, 1):
        verdict = auditor.audit(record)
        print(f"**{i}. `{record.id}`** ({record.question_type}, {record.difficulty}; "
              f"{record.meta.get('disease', record.meta.get('seed_id', ''))})\n")
        print(f"> {record.question}\n>")
        for letter, option in zip(record.letters, record.options):
            mark = " ✓" if letter == record.gold else ""
            print(f"> {letter}. {option}{mark}  ")
        if not verdict.checkable:
            said = "not checkable against the knowledge base"
        elif verdict.ok and verdict.unresolved:
            said = f"pass on what could be checked; not checked: {verdict.unresolved} (no ontology term)"
        elif verdict.ok:
            said = "pass (key supported, no leakage, distinct, coherent)"
        else:
            said = "; ".join(f"{k}: {v}" for k, v in verdict.problems.items())
        print(f"\nAudit: {said}.\n")


if __name__ == "__main__":
    main()
