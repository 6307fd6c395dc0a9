"""``medssr data real [overrides]``: the human-annotated pools as decontaminated, gold-labelled
question records.

Writes under ``output_dir``: ``<data.output_name>.jsonl`` (records), ``<name>.removed.jsonl``
(every item left out: id, pool, contaminated/invalid, reason, matched evaluation id) and
``<name>.card.json`` (config, input hashes, counts per pool and reason), each atomically; the card
goes last, so its presence means the run finished. A rerun whose config and input files are
unchanged finds the card and does nothing.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

from medssr_nemo.cli.common import config_parser, parse_config, run_guarded
from medssr_nemo.config import MedSSRConfig

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


def prepare_real_data(cfg: MedSSRConfig, root: str | None = None) -> int:
    from tqdm import tqdm

    from medssr_nemo.data.cards import file_sha256, write_json_atomic, write_jsonl_atomic
    from medssr_nemo.data.eval_suite import load_eval_suite
    from medssr_nemo.data.real import load_pool, pool_inputs, real_decontaminator
    from medssr_nemo.paths import data_root
    from medssr_nemo.records import write_records

    data_cfg = cfg.data
    base = Path(root) if root is not None else data_root()
    out_dir = Path(cfg.output_dir)
    records_path = out_dir / f"{data_cfg.output_name}.jsonl"
    removed_path = out_dir / f"{data_cfg.output_name}.removed.jsonl"
    card_path = out_dir / f"{data_cfg.output_name}.card.json"

    suite = load_eval_suite(base)
    inputs = {str(p.relative_to(base)): file_sha256(p) for pool in data_cfg.pools for p in pool_inputs(pool, base)}
    inputs["train/pubmedqa/test_ground_truth.json"] = file_sha256(base / "train/pubmedqa/test_ground_truth.json")
    identity = {"config": dataclasses.asdict(data_cfg), "inputs": inputs,
                "eval_files": {f"eval/{k}": v for k, v in suite.file_sha256.items()}}
    fingerprint = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()
    if _finished(card_path, records_path, fingerprint):
        print(f"medssr data real: {records_path} is up to date (same config and inputs); nothing to do")
        return 0

    index = real_decontaminator(base, **dataclasses.asdict(data_cfg.decontam))
    results = {}
    for pool in tqdm(data_cfg.pools, desc="real pools", unit="pool"):
        results[pool] = load_pool(pool, index, root=base, max_records=data_cfg.max_per_pool,
                                  seed=data_cfg.seed, pubmedqa_context=data_cfg.pubmedqa_context)
    from medssr_nemo.data.seed_split import split_reserve

    reserved, reserve = {}, []
    for pool, result in results.items():   # the stage-1 seed reserve never reaches stage 2
        kept_out, result.records = split_reserve(result.records, data_cfg.stage1_seed_share)
        reserved[pool] = len(kept_out)
        reserve += kept_out
    records = [r for result in results.values() for r in result.records]
    write_records(reserve, out_dir / f"{data_cfg.output_name}.stage1_seeds.jsonl")
    write_records(records, records_path)
    write_jsonl_atomic(removed_path, [d.to_dict() for result in results.values()
                                      for d in (*result.contaminated, *result.invalid)])
    card: dict[str, Any] = {
        "command": "medssr data real",
        "fingerprint": fingerprint,
        **identity,
        "eval_suite_items": suite.counts(),
        "pools": {pool: result.summary() for pool, result in results.items()},
        "total_written": len(records),
        "reserved_for_stage1_seeds": {"share": data_cfg.stage1_seed_share, "per_pool": reserved,
                                      "records": f"{data_cfg.output_name}.stage1_seeds.jsonl"},
        "outputs": {"records": records_path.name, "records_sha256": file_sha256(records_path),
                    "removed": removed_path.name},
    }
    write_json_atomic(card_path, card)
    for pool, result in results.items():
        s = result.summary()
        print(f"{pool:<9} read {s['read']:>5}  removed (eval overlap) {s['removed_contaminated_total']:>5} "
              f"{s['removed_contaminated']}  invalid {sum(s['invalid'].values())} {s['invalid']}  written {s['written']}")
    print(f"wrote {len(records)} records to {records_path} (card: {card_path})")
    return 0


def _finished(card_path: Path, records_path: Path, fingerprint: str) -> bool:
    """True when a card with this fingerprint exists and the records file still matches it."""
    from medssr_nemo.data.cards import file_sha256

    if not card_path.exists() or not records_path.exists():
        return False
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return False
    return card.get("fingerprint") == fingerprint and \
        card.get("outputs", {}).get("records_sha256") == file_sha256(records_path)
