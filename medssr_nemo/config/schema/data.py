"""``data``: the human-annotated training pools (``medssr data real``) and decontamination."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List

from medssr_nemo.config.schema.common import ConfigValueError, check_range

REAL_POOLS = ["medmcqa", "pubmedqa", "mmlu"]


@dataclass
class DecontamConfig:
    """Knobs of ``medssr_nemo.data.decontam.Decontaminator`` (its docstring says why each exists)."""

    ngram_size: int = 13                # words per n-gram
    ngram_min_coverage: float = 0.3     # share of the shorter text inside shared n-grams (0 = any)
    min_specific_stem_words: int = 8    # an equal stem this long is a copy whatever the options
    boilerplate_min_items: int = 3      # n-grams in this many evaluation items are template text

    def __post_init__(self) -> None:
        check_range("data.decontam.ngram_size", self.ngram_size, 1)
        check_range("data.decontam.ngram_min_coverage", self.ngram_min_coverage, 0.0, 1.0)
        check_range("data.decontam.min_specific_stem_words", self.min_specific_stem_words, 1)
        check_range("data.decontam.boilerplate_min_items", self.boilerplate_min_items, 2)


@dataclass
class DataConfig:
    pools: List[str] = field(default_factory=lambda: list(REAL_POOLS))
    max_per_pool: int = 0               # 0 = all; else a seeded random subset per pool (file order kept)
    seed: int = 0
    pubmedqa_context: bool = False      # put the abstract's context before PubMedQA questions
    output_name: str = "real"           # <output_dir>/<output_name>.jsonl (+ .card.json, .removed.jsonl)
    # share of each pool reserved for stage-1 seed questions (kg synthesis's non-rare slots) and left
    # out of the stage-2 pool, so the two stages never train on the same question; 0 = no reserve
    stage1_seed_share: float = 0.5
    decontam: DecontamConfig = field(default_factory=DecontamConfig)

    def __post_init__(self) -> None:
        if not self.pools:
            raise ConfigValueError(f"data.pools is empty; choose some of {REAL_POOLS}")
        unknown = [p for p in self.pools if p not in REAL_POOLS]
        if unknown or len(set(self.pools)) != len(self.pools):
            raise ConfigValueError(f"data.pools={list(self.pools)} has unknown or repeated pools; allowed: {REAL_POOLS}")
        check_range("data.max_per_pool", self.max_per_pool, 0)
        check_range("data.stage1_seed_share", self.stage1_seed_share, 0.0, 1.0)
        if not self.output_name or "/" in self.output_name:
            raise ConfigValueError(f"data.output_name={self.output_name!r} must be a plain file stem (no '/')")
