"""Benchmarks backed by files, and how a run finds the benchmarks it names.

A registered benchmark (kind ``benchmark``) is a ``Benchmark`` subclass or any zero-argument
callable returning a ``Benchmark``. ``FileBenchmark`` covers every file-backed one: the built-ins
in ``plugins/benchmarks`` and those a user defines in config alone
(``eval.custom_benchmarks.<name>: {path, format, rare}``).
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
from pathlib import Path
from typing import Callable, Mapping, Sequence

from medssr_nemo import registry
from medssr_nemo.eval.interfaces import Benchmark
from medssr_nemo.eval.readers import read_benchmark_file
from medssr_nemo.data.root import data_root
from medssr_nemo.records import QuestionRecord, RecordError

log = logging.getLogger(__name__)

PathSpec = str | os.PathLike | Callable[[], str | os.PathLike]


class FileBenchmark(Benchmark):
    """Questions read from one or more files of one format (paths may be callables, resolved at
    load time, so listing the registry never touches the data)."""

    def __init__(self, name: str, paths: Sequence[PathSpec], file_format: str, rare: bool = False) -> None:
        self.name = name
        self.rare = rare
        self._paths = list(paths)
        self.file_format = file_format

    def paths(self) -> list[Path]:
        return [Path(p() if callable(p) else p) for p in self._paths]

    def load(self) -> list[QuestionRecord]:
        records: list[QuestionRecord] = []
        for path in self.paths():
            records.extend(read_benchmark_file(path, self.file_format))
        check_benchmark_records(self.name, records)
        if self.rare:
            for record in records:
                record.rare = True
        log.info("benchmark %s: %d questions from %s", self.name, len(records),
                 ", ".join(str(p) for p in self.paths()))
        return records


def check_benchmark_records(name: str, records: list[QuestionRecord]) -> None:
    """Every item has a gold key and a unique id (results are keyed by id)."""
    if not records:
        raise RecordError(f"benchmark {name!r} has no questions")
    seen: set[str] = set()
    for record in records:
        if record.gold is None:
            raise RecordError(f"benchmark {name!r}: question {record.id!r} has no gold answer")
        if record.id in seen:
            raise RecordError(f"benchmark {name!r}: question id {record.id!r} appears twice")
        seen.add(record.id)


# option texts that hold no option (a file padded to a fixed number of options); counted, kept
PLACEHOLDER_OPTION_TEXTS = frozenset({"", "n/a", "na", "-", "null"})


def is_placeholder_option(text: str) -> bool:
    return text.strip().lower() in PLACEHOLDER_OPTION_TEXTS


def load_report(records: list[QuestionRecord]) -> dict[str, int]:
    """What a benchmark's load found: questions, and placeholder options (``n/a``, empty)."""
    per_question = [sum(is_placeholder_option(o) for o in r.options) for r in records]
    return {"questions": len(records), "placeholder_options": sum(per_question),
            "questions_with_placeholder_options": sum(1 for n in per_question if n)}


def data_file(relative: str) -> Callable[[], Path]:
    """A path under the data root, resolved when the benchmark loads."""
    def resolve() -> Path:
        return data_root() / relative
    return resolve


def resolve_custom_path(path: str) -> Path:
    """A custom benchmark's path: as given when it exists, else relative to the data root."""
    given = Path(path).expanduser()
    if given.is_absolute() or given.exists():
        return given

    return data_root() / given


def get_benchmark(name: str, custom: Mapping[str, object] | None = None) -> Benchmark:
    """The benchmark ``name``: a config-defined one (``custom[name]`` with path/format/rare) or a
    registered plugin (or dotted path)."""
    if custom and name in custom:
        spec = custom[name]
        if not isinstance(spec, Mapping):   # a CustomBenchmarkConfig
            spec = vars(spec)
        return FileBenchmark(name, [resolve_custom_path(spec["path"])], spec.get("format", "medssr_json"),
                             rare=bool(spec.get("rare", False)))
    factory = registry.get("benchmark", name)
    benchmark = factory()
    if not isinstance(benchmark, Benchmark):
        raise TypeError(f"benchmark plugin {name!r} built a {type(benchmark).__name__}, not a Benchmark")
    return benchmark


def benchmark_names(custom: Mapping[str, object] | None = None) -> list[str]:
    """Every benchmark a run can name: registered ones, then config-defined ones."""
    names = registry.names("benchmark")
    return names + [n for n in (custom or {}) if n not in names]


def subsample(records: list[QuestionRecord], limit: int | None, seed: int, name: str) -> list[QuestionRecord]:
    """The first ``limit`` questions of a permutation seeded from (seed, benchmark name), kept in
    file order; all of them when ``limit`` is None or not smaller than the benchmark. A larger
    limit keeps every question of a smaller one."""
    if limit is None or limit >= len(records):
        return list(records)
    digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    order = list(range(len(records)))
    random.Random(int.from_bytes(digest[:8], "big")).shuffle(order)
    return [records[i] for i in sorted(order[:limit])]
