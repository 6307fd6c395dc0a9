"""Benchmark plugins load the shipped files with their exact counts; config-defined benchmarks,
RareBench's multiple-choice conversion and the RareDis-Sub hub layout behave as documented."""

from __future__ import annotations

import json

import pytest

from medssr_nemo import registry
from medssr_nemo.config import ConfigError, load_config
from medssr_nemo.config.schema.eval import FILE_FORMATS
from medssr_nemo.eval.benchmarks import get_benchmark, subsample
from medssr_nemo.eval.readers import READERS
from medssr_nemo.records import RecordError

EXPECTED_COUNTS = {
    "medqa": 1273, "medmcqa": 1200, "pubmedqa": 500, "bioasq": 782, "mmlu": 1089,
    "lancet": 412, "nejm": 603, "medbullets": 308,
    "medxpertqa": 2450, "medxpertqa_r": 1861, "medxpertqa_u": 589,
    "rarebench_ramedis": 624, "rarebench_mme": 40, "rarebench_hms": 88,
    "rarebench_lirical": 370, "rarebench_pumch_adm": 75, "rarebench": 624 + 40 + 88 + 370 + 75,
}
OPTION_COUNTS = {"medqa": {4}, "pubmedqa": {3}, "bioasq": {2}, "medbullets": {5}, "medxpertqa": {10}, "rarebench": {4}}


@pytest.fixture(scope="module")
def loaded():
    return {name: get_benchmark(name).load() for name in EXPECTED_COUNTS}


@pytest.mark.parametrize("name", sorted(EXPECTED_COUNTS))
def test_every_loader_returns_the_exact_count(loaded, name):
    records = loaded[name]
    assert len(records) == EXPECTED_COUNTS[name]
    assert len({r.id for r in records}) == len(records)
    assert all(r.gold in r.letters for r in records)


@pytest.mark.parametrize("name, counts", sorted(OPTION_COUNTS.items()))
def test_option_counts_match_each_benchmark(loaded, name, counts):
    assert {len(r.options) for r in loaded[name]} == counts


def test_rare_flag_marks_rarebench_only():
    assert get_benchmark("rarebench").rare and get_benchmark("rarebench_mme").rare
    assert not get_benchmark("medqa").rare and not get_benchmark("medxpertqa").rare


def test_config_formats_and_readers_agree():
    assert sorted(FILE_FORMATS) == sorted(READERS)


def test_paper_file_keeps_the_question_text_and_gold(loaded):
    first = loaded["medqa"][0]
    assert first.id == "medqa-000786" and first.gold == "D"
    assert first.options == ["Factor VII", "Factor VIII", "Factor IX", "Factor XII"]
    assert first.question.endswith("Which of the following factors is most likely defective in this patient?")


def test_medxpertqa_strips_the_inline_answer_choices(loaded):
    record = next(r for r in loaded["medxpertqa_u"] if r.id == "medxpertqa-Text-6")
    assert "Answer Choices" not in record.question
    assert record.options[7] == "66 Gy" and record.gold == "H"


# ---- RareBench as multiple choice -------------------------------------------------------------

def test_rarebench_questions_are_deterministic_and_well_formed(loaded):
    again = get_benchmark("rarebench_hms").load()
    assert [r.to_dict() for r in again] == [r.to_dict() for r in loaded["rarebench_hms"]]
    for record in loaded["rarebench"]:
        assert record.rare and record.question_type == "diagnosis"
        assert len(set(o.lower() for o in record.options)) == len(record.options)
        assert "Which of the following" in record.question


def test_rarebench_answer_is_the_case_disease_and_letters_are_spread(loaded):
    records = loaded["rarebench_mme"]
    first = records[0]     # MME line 1: OMIM:610536 / ORPHA:79113
    mapping = json.loads(open(_rarebench_dir() / "disease_mapping.json", encoding="utf-8-sig").read())
    assert first.knowledge_ids == ["OMIM:610536", "ORPHA:79113"]
    assert first.options[first.letters.index(first.gold)] == mapping["OMIM:610536"].split("/")[0]
    golds = [r.gold for r in loaded["rarebench"]]
    assert all(golds.count(letter) > len(golds) / 8 for letter in "ABCD")


def test_the_case_without_a_mapped_name_is_named_through_orphanet(loaded):
    case = loaded["rarebench_hms"][66]      # OMIM:607665, absent from disease_mapping.json
    assert case.knowledge_ids == ["OMIM:607665"]
    assert case.options[case.letters.index(case.gold)] == "Tubulointerstitial nephritis and uveitis syndrome"


def _rarebench_dir():
    from medssr_nemo.data.root import data_root

    return data_root() / "eval" / "rarebench"


def test_rarebench_distractors_are_the_closest_other_diseases(tmp_path):
    """A hand-built subset: the distractors must come from the pool of the 2*(k) most similar
    other diseases, never the case's own disease under another id or synonym."""
    from medssr_nemo.eval.rarebench import rarebench_questions

    (tmp_path / "disease_mapping.json").write_text(json.dumps({
        "OMIM:1": "Alpha syndrome", "ORPHA:1": "Alpha syndrome/Alpha disease",
        "OMIM:2": "Beta syndrome", "OMIM:3": "Gamma syndrome", "OMIM:4": "Delta syndrome",
        "OMIM:5": "Epsilon syndrome", "OMIM:6": "Zeta syndrome", "OMIM:7": "Eta syndrome",
        "OMIM:8": "Alpha disease",      # a synonym of the answer under another id: never a distractor
        "OMIM:9": "Theta syndrome",
    }), encoding="utf-8-sig")
    (tmp_path / "phenotype_mapping.json").write_text(json.dumps(
        {f"HP:{i}": f"Sign {i}" for i in range(1, 20)}), encoding="utf-8-sig")
    cases = [
        {"Phenotype": ["HP:1", "HP:2", "HP:3"], "RareDisease": ["OMIM:1", "ORPHA:1"], "Department": None},
        {"Phenotype": ["HP:1", "HP:2"], "RareDisease": ["OMIM:2"], "Department": None},       # J = 2/3
        {"Phenotype": ["HP:1", "HP:3", "HP:9"], "RareDisease": ["OMIM:3"], "Department": None},  # J = 2/4
        {"Phenotype": ["HP:2", "HP:9"], "RareDisease": ["OMIM:4"], "Department": None},       # J = 1/4
        {"Phenotype": ["HP:3", "HP:9", "HP:10"], "RareDisease": ["OMIM:5"], "Department": None},  # 1/5
        {"Phenotype": ["HP:1", "HP:2", "HP:3"], "RareDisease": ["OMIM:8"], "Department": None},  # synonym, J = 1
        {"Phenotype": ["HP:3", "HP:11", "HP:12"], "RareDisease": ["OMIM:6"], "Department": None},  # 1/5
        {"Phenotype": ["HP:13", "HP:14"], "RareDisease": ["OMIM:7"], "Department": None},      # 0
        {"Phenotype": ["HP:15", "HP:16"], "RareDisease": ["OMIM:9"], "Department": None},      # 0
    ]
    subset = tmp_path / "TOY.jsonl"
    subset.write_text("".join(json.dumps(c) + "\n" for c in cases))
    first = rarebench_questions(subset)[0]
    assert first.question.startswith("A patient presents with the following phenotypic features (HPO terms): "
                                     "Sign 1; Sign 2; Sign 3.")
    assert first.options[first.letters.index(first.gold)] == "Alpha syndrome"
    distractors = set(first.options) - {"Alpha syndrome"}
    # Jaccard to {1,2,3}: Alpha disease 1 (excluded: a synonym of the answer), Beta 2/3, Gamma 1/2,
    # Delta 1/4, Epsilon 1/5, Zeta 1/5, Eta 0, Theta 0 (ties by name): the pool is the first six.
    pool = {"Beta syndrome", "Gamma syndrome", "Delta syndrome", "Epsilon syndrome", "Zeta syndrome", "Eta syndrome"}
    assert len(distractors) == 3 and distractors <= pool
    for question in rarebench_questions(subset):   # never two names of one disease in a question
        assert not {"Alpha syndrome", "Alpha disease"} <= set(question.options)


# ---- config-defined benchmarks and errors ---------------------------------------------------

def test_a_benchmark_defined_in_config_alone_loads(tmp_path):
    path = tmp_path / "mine.jsonl"
    rows = [{"id": "q1", "question": "Which vitamin?", "options": ["A1", "B12", "C"], "answer": "B"},
            {"id": "q2", "question": "Which organ?", "options": {"A": "Liver", "B": "Heart"}, "gold": "a"},
            {"question": "Stem?\nA. yes\nB. no", "answer_idx": "A"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = load_config("base", [f"+eval.custom_benchmarks.mine.path={path}",
                               "+eval.custom_benchmarks.mine.format=mcq_jsonl",
                               "+eval.custom_benchmarks.mine.rare=true"])
    benchmark = get_benchmark("mine", cfg.eval.custom_benchmarks)
    records = benchmark.load()
    assert benchmark.rare and [r.gold for r in records] == ["B", "A", "A"]
    assert records[2].id == "mine-3" and records[2].options == ["yes", "no"]


def test_a_malformed_row_names_the_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"id": "ok", "question": "Q?", "options": ["x", "y"], "answer": "A"}) + "\n"
                    + json.dumps({"id": "bad", "question": "Q?", "options": ["x", "y"], "answer": "C"}) + "\n")
    with pytest.raises(RecordError, match=rf"{path}:2: no answer key: .* letters A, B, .*got answer='C'"):
        get_benchmark("bad", {"bad": {"path": str(path), "format": "mcq_jsonl"}}).load()
    path.write_text('{"id": "x", "question": "Q?"\n')
    with pytest.raises(RecordError, match=rf"{path}:1: not valid JSON"):
        get_benchmark("bad", {"bad": {"path": str(path), "format": "mcq_jsonl"}}).load()


def test_custom_benchmark_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="eval.custom_benchmarks.x.format='csv' is not allowed"):
        load_config("base", ["+eval.custom_benchmarks.x.path=a.json", "+eval.custom_benchmarks.x.format=csv"])
    with pytest.raises(ConfigError, match=r"eval.custom_benchmarks.x has unknown key\(s\) \['pth'\]"):
        load_config("base", ["+eval.custom_benchmarks.x.pth=a.json"])


def test_unknown_benchmark_lists_the_known_ones():
    with pytest.raises(LookupError, match="known: .*medqa"):
        get_benchmark("medqaa")


def test_subsample_is_deterministic_and_keeps_file_order(loaded):
    records = loaded["pubmedqa"]
    a, b = subsample(records, 7, 0, "pubmedqa"), subsample(records, 7, 0, "pubmedqa")
    assert [r.id for r in a] == [r.id for r in b] and len(a) == 7
    positions = [records.index(r) for r in a]
    assert positions == sorted(positions)
    assert [r.id for r in subsample(records, 7, 1, "pubmedqa")] != [r.id for r in a]
    assert {r.id for r in subsample(records, 5, 0, "pubmedqa")} < {r.id for r in a}   # nested
    assert subsample(records, None, 0, "pubmedqa") == records


# ---- RareDis-Sub, hub layout ------------------------------------------------------------------

def _raredis_rows():
    return [{"id": "raredis-1", "question": "Which gene causes Fabry disease?\nA. GLA\nB. HEXA\nC. GBA\nD. NPC1",
             "gold": "A", "name": "raredis"},
            {"id": "raredis-2", "question": "Inheritance of Fabry disease?\nA. X-linked\nB. Mitochondrial",
             "gold": "A", "name": "raredis"}]


def test_raredis_sub_reads_a_local_snapshot_in_hub_layout(tmp_path, monkeypatch):
    import datasets

    snapshot = tmp_path / "RareDis-Sub"
    (snapshot / "data").mkdir(parents=True)
    (snapshot / "README.md").write_text("---\nlicense: apache-2.0\n---\n")
    datasets.Dataset.from_list(_raredis_rows()).to_parquet(str(snapshot / "data" / "test-00000-of-00001.parquet"))
    monkeypatch.setenv("MEDSSR_RAREDIS_SUB", str(snapshot))
    benchmark = registry.get("benchmark", "raredis_sub")()
    records = benchmark.load()
    assert benchmark.rare and [r.id for r in records] == ["raredis-1", "raredis-2"]
    assert records[0].options == ["GLA", "HEXA", "GBA", "NPC1"] and all(r.rare for r in records)

    json_snapshot = tmp_path / "json"
    json_snapshot.mkdir()
    (json_snapshot / "RareDis-Sub.json").write_text(json.dumps(_raredis_rows()))
    monkeypatch.setenv("MEDSSR_RAREDIS_SUB", str(json_snapshot))
    assert [r.to_dict() for r in registry.get("benchmark", "raredis_sub")().load()] == [r.to_dict() for r in records]


def test_raredis_sub_without_hub_access_says_how_to_provide_it(monkeypatch, tmp_path):
    monkeypatch.delenv("MEDSSR_RAREDIS_SUB", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    with pytest.raises(FileNotFoundError, match=r"only on the Hugging Face Hub.*huggingface-cli download .*MEDSSR_RAREDIS_SUB"):
        registry.get("benchmark", "raredis_sub")().load()
