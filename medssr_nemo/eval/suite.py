"""The paper's rare-disease benchmark when the data has it: RareDis-Sub is published only on the
Hugging Face Hub, so `medssr data download` fetches it where the hub is reachable
(``<data>/eval/raredis_sub/``). A suite that names ``rarebench`` then evaluates ``raredis_sub``
too, as the paper does, with RareBench kept as an additional rare-disease benchmark; without it,
RareBench stands in, and the run's report says so."""

from __future__ import annotations

import os
from typing import Sequence
from medssr_nemo.eval.raredis import ENV_VAR
from medssr_nemo.data.root import data_root

RAREDIS_DIR = "eval/raredis_sub"
STANDS_IN = ("RareDis-Sub (the paper's tenth benchmark, Hugging Face Hub only) is not in the data root: "
             "RareBench stands in for it (`medssr data download --only raredis_sub` fetches it where the hub is reachable)")


def raredis_available() -> bool:
    folder = data_root() / RAREDIS_DIR
    return bool(os.environ.get(ENV_VAR)) or (folder.is_dir() and any(folder.glob("*.parquet")))


def effective_benchmarks(names: Sequence[str]) -> list[str]:
    """``names``, with ``raredis_sub`` added right before ``rarebench`` when the data has it."""
    names = list(names)
    if "rarebench" in names and "raredis_sub" not in names and raredis_available():
        names.insert(names.index("rarebench"), "raredis_sub")
    return names


def rare_benchmark_note(names: Sequence[str]) -> str | None:
    """The report's line when RareBench stands in for RareDis-Sub (None when it does not)."""
    effective = effective_benchmarks(names)
    return STANDS_IN if "rarebench" in effective and "raredis_sub" not in effective else None
