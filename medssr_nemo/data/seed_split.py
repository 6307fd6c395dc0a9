"""The stage-1 seed reserve: a fixed share of each human-annotated pool that only stage 1 sees.

Without a generator, the synthesizer fills non-rare slots with seed questions copied from the
training pools. If those were the same questions stage 2 then trains on with gold labels, stage 1
would pseudo-label questions whose answers are known and the self-supervised stage would partly
repeat the supervised one. So each pool is split once, by a hash of the record id (stable across
machines, file order and pool subsets): ids whose hash falls below ``data.stage1_seed_share`` are
the stage-1 reserve; synthesis draws seeds only from it, and ``medssr data real`` leaves it out.
"""

from __future__ import annotations

import hashlib
from typing import Iterable

from medssr_nemo.records import QuestionRecord

SALT = "medssr-stage1-seed-reserve"


def reserve_position(record_id: str) -> float:
    """A uniform number in [0, 1) fixed by the id."""
    digest = hashlib.sha256(f"{SALT}:{record_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2 ** 64


def in_stage1_reserve(record_id: str, share: float) -> bool:
    return share > 0 and reserve_position(record_id) < share


def split_reserve(records: Iterable[QuestionRecord], share: float) -> tuple[list[QuestionRecord], list[QuestionRecord]]:
    """(stage-1 reserve, the rest), each in input order."""
    reserve, rest = [], []
    for record in records:
        (reserve if in_stage1_reserve(record.id, share) else rest).append(record)
    return reserve, rest
