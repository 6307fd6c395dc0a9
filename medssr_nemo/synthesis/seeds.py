"""Seed questions: real, human-annotated questions the synthesizers start from.

They come from the stage-2 training pools through ``medssr_nemo.data.real`` (part of the data
layer), which removes every item of the evaluation suite first: a seed can never carry an
evaluation question into synthetic data.
"""

from __future__ import annotations

import re
from typing import Any, Sequence

from medssr_nemo.data.real import load_real_pools
from medssr_nemo.data.seed_split import split_reserve
from medssr_nemo.records import QuestionRecord

# options that point at other options ("All of the above", "Both A and B") fix the option order
_ORDER_BOUND = re.compile(
    r"\b(all|none|both|neither)\s+of\s+(the\s+)?(above|following|these)\b|^\s*(both|all|none|neither)\b"
    r"|\b[a-e]\s*(and|&|or)\s*[a-e]\b|\babove\b", re.IGNORECASE)


def load_seed_pool(pools: Sequence[str], decontaminator: Any = None,
                   reserve_share: float = 0.0) -> tuple[list[QuestionRecord], dict[str, Any]]:
    """(clean gold-labelled seed records of ``pools``, in pool then file order; a summary).
    ``reserve_share`` > 0: only the stage-1 reserve (``data.seed_split``), which ``medssr data
    real`` leaves out of the stage-2 pool; 0: the whole pool, overlapping stage 2."""
    records, report = load_real_pools(pools, decontaminator=decontaminator)
    if reserve_share > 0:
        records, _ = split_reserve(records, reserve_share)
    if not records:
        raise ValueError(f"seed pools {list(pools)} gave no questions after decontamination"
                         + (f" and the stage-1 reserve (data.stage1_seed_share={reserve_share})" if reserve_share else ""))
    hashes = {path: digest for result in report.pools.values() for path, digest in result.input_sha256.items()}
    return records, {"pools": report.summary(), "records": len(records), "input_sha256": hashes,
                     "stage1_reserve_share": reserve_share,
                     "disjoint_from_stage2_pool": reserve_share > 0}


def order_is_free(record: QuestionRecord) -> bool:
    """True when shuffling the options cannot change a question's meaning."""
    return not any(_ORDER_BOUND.search(option) for option in record.options)
