"""The human-annotated pools as decontaminated, gold-labelled question records (what
``medssr data real`` and the pipeline's ``real_data`` step run).

Writes under ``output_dir``: ``<data.output_name>.jsonl`` (records), ``<name>.removed.jsonl``
(every item left out: id, pool, contaminated/invalid, reason, matched evaluation id) and
``<name>.card.json`` (config, input hashes, counts per pool and reason), each atomically; the card
goes last, so its presence means the run finished. A rerun whose config and input files are
unchanged finds the card and does nothing.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from tqdm import tqdm

from medssr_nemo.artifacts import file_sha256, fingerprint, is_finished, make_card, write_json_atomic, write_jsonl_atomic
from medssr_nemo.config import MedSSRConfig
from medssr_nemo.data.eval_suite import load_eval_suite
from medssr_nemo.data.real import load_pool, pool_inputs, real_decontaminator
from medssr_nemo.data.seed_split import split_reserve
from medssr_nemo.data.root import data_root
from medssr_nemo.records import write_records


def prepare_real_data(cfg: MedSSRConfig, root: str | None = None) -> int:
    """Prepare ``data.pools`` under ``cfg.output_dir`` (see the module docstring); ``root``
    replaces the data root. Prints a line per pool; returns 0."""
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
    run_fingerprint = fingerprint(identity)
    if is_finished(card_path, records_path, run_fingerprint):
        print(f"medssr data real: {records_path} is up to date (same config and inputs); nothing to do")
        return 0

    index = real_decontaminator(base, **dataclasses.asdict(data_cfg.decontam))
    results = {}
    for pool in tqdm(data_cfg.pools, desc="real pools", unit="pool"):
        results[pool] = load_pool(pool, index, root=base, max_records=data_cfg.max_per_pool,
                                  seed=data_cfg.seed, pubmedqa_context=data_cfg.pubmedqa_context)
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
    card = make_card("medssr data real", run_fingerprint, records_path, outputs={"removed": removed_path.name},
                     **identity, eval_suite_items=suite.counts(),
                     pools={pool: result.summary() for pool, result in results.items()},
                     total_written=len(records),
                     reserved_for_stage1_seeds={"share": data_cfg.stage1_seed_share, "per_pool": reserved,
                                                "records": f"{data_cfg.output_name}.stage1_seeds.jsonl"})
    write_json_atomic(card_path, card)
    for pool, result in results.items():
        s = result.summary()
        print(f"{pool:<9} read {s['read']:>5}  removed (eval overlap) {s['removed_contaminated_total']:>5} "
              f"{s['removed_contaminated']}  invalid {sum(s['invalid'].values())} {s['invalid']}  written {s['written']}")
    print(f"wrote {len(records)} records to {records_path} (card: {card_path})")
    return 0

