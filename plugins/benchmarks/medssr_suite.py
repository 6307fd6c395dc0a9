"""The paper's ten benchmarks, plus RareBench's subsets and MedXpertQA's splits on their own.

Counts of the shipped files: MedQA 1273, MedMCQA 1200, PubMedQA 500, BioASQ 782, MMLU-Med 1089,
Lancet 412, NEJM 603, MedBullets 308, MedXpertQA 2450 (reasoning 1861 + understanding 589),
RareBench 1197 (RAMEDIS 624, MME 40, HMS 88, LIRICAL 370, PUMCH_ADM 75). RareDis-Sub (2122) is
read from a Hugging Face Hub snapshot (see ``medssr_nemo.eval.raredis``).
"""

from __future__ import annotations

from medssr_nemo.data.eval_files import MEDXPERTQA_SPLITS, PAPER_BENCHMARKS, RAREBENCH_SUBSETS
from medssr_nemo.eval.benchmarks import FileBenchmark, data_file
from medssr_nemo.registry import register


def _paper(name: str):
    def build() -> FileBenchmark:
        return FileBenchmark(name, [data_file(f"eval/medssr/test_short_{name}.json")], "medssr_json")
    build.__qualname__ = f"paper_benchmark_{name}"
    return build


def _medxpertqa(name: str, splits: list[str]):
    def build() -> FileBenchmark:
        paths = [data_file(f"eval/medxpertqa/medxpertqa_{s}_test.jsonl") for s in splits]
        return FileBenchmark(name, paths, "medxpertqa_jsonl")
    build.__qualname__ = f"medxpertqa_benchmark_{name}"
    return build


def _rarebench(name: str, subsets: list[str]):
    def build() -> FileBenchmark:
        paths = [data_file(f"eval/rarebench/{s}.jsonl") for s in subsets]
        return FileBenchmark(name, paths, "rarebench_jsonl", rare=True)
    build.__qualname__ = f"rarebench_benchmark_{name}"
    return build


def _raredis_sub() -> FileBenchmark:
    from medssr_nemo.eval.raredis import locate_snapshot

    return FileBenchmark("raredis_sub", [lambda: locate_snapshot()], "raredis_hub", rare=True)


for _name in PAPER_BENCHMARKS:
    register("benchmark", _name)(_paper(_name))
register("benchmark", "medxpertqa")(_medxpertqa("medxpertqa", list(MEDXPERTQA_SPLITS)))
for _split in MEDXPERTQA_SPLITS:
    register("benchmark", f"medxpertqa_{_split}")(_medxpertqa(f"medxpertqa_{_split}", [_split]))
register("benchmark", "rarebench")(_rarebench("rarebench", list(RAREBENCH_SUBSETS)))
for _subset in RAREBENCH_SUBSETS:
    register("benchmark", f"rarebench_{_subset.lower()}")(_rarebench(f"rarebench_{_subset.lower()}", [_subset]))
register("benchmark", "raredis_sub")(_raredis_sub)
