"""``medssr data real``: gold-labelled real pools with every evaluation item removed."""

from __future__ import annotations

import csv
import json
import re

import pytest

from medssr_nemo.cli.data import main as data_main
from medssr_nemo.data.decontam import Decontaminator
from medssr_nemo.data.real import load_pool, read_medmcqa, read_mmlu_file, read_pubmedqa, real_decontaminator
from medssr_nemo.data.root import data_root
from medssr_nemo.records import QuestionRecord, RecordError, read_records

DATA = data_root()


@pytest.fixture(scope="module")
def real_run(tmp_path_factory):
    """One full ``medssr data real`` run (all pools, no limit), shared by the tests below."""
    out = tmp_path_factory.mktemp("real")
    assert data_main(["real", f"output_dir={out}", "data.stage1_seed_share=0"]) == 0
    card = json.loads((out / "real.card.json").read_text())
    removed = [json.loads(line) for line in (out / "real.removed.jsonl").read_text().splitlines()]
    return out, read_records(out / "real.jsonl"), card, removed


def _raw_eval_ids(name: str) -> set[str]:
    # read with json directly, not through medssr_nemo's readers: an independent reference
    return {item["id"] for item in json.loads((DATA / f"eval/medssr/test_short_{name}.json").read_text())}


def _crude_norm(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


def test_no_real_training_question_is_an_evaluation_question(real_run):
    _, records, _, _ = real_run
    ids = {r.id for r in records}
    medmcqa_eval = _raw_eval_ids("medmcqa")
    pubmedqa_eval = _raw_eval_ids("pubmedqa")
    pubmedqa_test = {f"pubmedqa-{pmid}" for pmid in json.loads((DATA / "train/pubmedqa/test_ground_truth.json").read_text())}
    assert len(medmcqa_eval) == 1200 and len(pubmedqa_eval) == 500 and len(pubmedqa_test) == 500
    assert not ids & medmcqa_eval
    assert not ids & pubmedqa_eval
    assert not ids & pubmedqa_test
    # every written record passes the full evaluation-suite index ...
    index = real_decontaminator()
    assert [r.id for r in records if index.is_contaminated(r)] == []
    # ... and, by a crude independent normaliser, no stem equals an evaluation stem of 8+ words
    eval_stems = set()
    for path in sorted((DATA / "eval/medssr").glob("test_short_*.json")):
        for item in json.loads(path.read_text()):
            stem = item["question"].split("\nA. ")[0]
            if len(_crude_norm(stem).split()) >= 8:
                eval_stems.add(_crude_norm(stem))
    assert [r.id for r in records if _crude_norm(r.question) in eval_stems] == []


def test_removed_counts_per_pool_and_reason_are_exact(real_run):
    _, records, card, removed = real_run
    pools = card["pools"]
    assert pools["medmcqa"]["read"] == 4183
    assert pools["medmcqa"]["removed_contaminated"] == {"exact id": 1200, "exact text": 7, "ngram overlap": 9}
    assert pools["medmcqa"]["invalid"] == {"ambiguous key": 9}
    assert pools["pubmedqa"]["read"] == 1000
    assert pools["pubmedqa"]["removed_contaminated"] == {"exact id": 500}
    assert pools["mmlu"]["read"] == 153
    assert pools["mmlu"]["removed_contaminated"] == {"exact text": 19, "ngram overlap": 2}
    written = {pool: pools[pool]["written"] for pool in pools}
    assert written == {"medmcqa": 4183 - 1216 - 9, "pubmedqa": 500, "mmlu": 132}
    assert card["total_written"] == len(records) == sum(written.values())
    # the removed list names each item once, with the evaluation item it repeats
    assert len(removed) == 1216 + 9 + 500 + 21
    assert len({(row["pool"], row["id"]) for row in removed}) == len(removed)
    assert all(row["eval_id"] for row in removed if row["kind"] == "contaminated")
    assert set(card["inputs"]) >= {"train/medmcqa/dev.json", "train/pubmedqa/ori_pqal.json"}


def test_records_carry_gold_labels_from_the_source_keys(real_run):
    _, records, _, _ = real_run
    by_id = {r.id: r for r in records}
    assert all(r.label == r.gold and r.label_source == "gold" for r in records)
    checked = 0
    for line in (DATA / "train/medmcqa/dev.json").read_text().splitlines():
        row = json.loads(line)
        mine = by_id.get(f"medmcqa-{row['id']}")
        if mine is not None:
            assert mine.options == [row[k].strip() for k in ("opa", "opb", "opc", "opd")]
            assert mine.gold == "ABCD"[row["cop"] - 1]
            checked += 1
    assert checked == 2958
    pqal = json.loads((DATA / "train/pubmedqa/ori_pqal.json").read_text())
    for pmid, item in list(pqal.items()):
        record = by_id.get(f"pubmedqa-{pmid}")
        if record is not None:
            assert record.options == ["yes", "no", "maybe"]
            assert record.options[ord(record.gold) - ord("A")] == item["final_decision"]
    with open(DATA / "train/mmlu_medical/anatomy_val.csv", newline="") as handle:
        for index, row in enumerate(csv.reader(handle)):
            mine = by_id[f"mmlu-anatomy-val-{index:03d}"]  # no anatomy row repeats an eval question
            assert (mine.question, mine.options, mine.gold) == (row[0], row[1:5], row[5])


def test_rerun_with_same_config_and_inputs_does_nothing(real_run, capsys):
    out, _, _, _ = real_run
    before = (out / "real.jsonl").stat().st_mtime_ns
    assert data_main(["real", f"output_dir={out}", "data.stage1_seed_share=0"]) == 0
    assert "up to date" in capsys.readouterr().out
    assert (out / "real.jsonl").stat().st_mtime_ns == before


# --- limits ------------------------------------------------------------------------------------

def _tiny_root(tmp_path, rows: list[dict]) -> tuple:
    (tmp_path / "train/medmcqa").mkdir(parents=True)
    (tmp_path / "train/medmcqa/dev.json").write_text("".join(json.dumps(r) + "\n" for r in rows))
    index = Decontaminator([QuestionRecord(id="medmcqa-ev", question="An evaluation stem about X?", options=["a", "b"])])
    return tmp_path, index


def _row(i: int, **kw) -> dict:
    return {"id": f"r{i}", "question": f"Question number {i} about topic {i}?", "opa": f"a{i}", "opb": f"b{i}",
            "opc": f"c{i}", "opd": f"d{i}", "cop": 1 + i % 4, **kw}


def test_limit_takes_a_seeded_subset_in_file_order(tmp_path):
    root, index = _tiny_root(tmp_path, [_row(i) for i in range(20)])
    a = [r.id for r in load_pool("medmcqa", index, root=root, max_records=5, seed=1).records]
    b = [r.id for r in load_pool("medmcqa", index, root=root, max_records=5, seed=1).records]
    c = [r.id for r in load_pool("medmcqa", index, root=root, max_records=5, seed=2).records]
    assert a == b and a != c and len(a) == 5
    assert a == sorted(a, key=lambda i: int(i.split("-r")[1]))
    result = load_pool("medmcqa", index, root=root, max_records=5, seed=1)
    assert result.summary()["not_selected_by_limit"] == 15


# --- bad rows ----------------------------------------------------------------------------------

def test_unfit_rows_are_counted_with_their_reason(tmp_path):
    rows = [_row(0), _row(1, opb=""), _row(2, opc="A2", opa="a2 ", cop=1), _row(3, question="  "),
            _row(4, id="ev", question="An evaluation stem about X?", opa="a", opb="b")]
    rows[2]["opc"] = "a2"   # the key's text (option A) repeated under C
    root, index = _tiny_root(tmp_path, rows)
    result = load_pool("medmcqa", index, root=root)
    assert [r.id for r in result.records] == ["medmcqa-r0"]
    assert {d.id: d.reason for d in result.invalid} == {
        "medmcqa-r1": "empty option", "medmcqa-r2": "ambiguous key", "medmcqa-r3": "empty question"}
    assert [(d.id, d.reason) for d in result.contaminated] == [("medmcqa-ev", "exact id")]


def test_malformed_medmcqa_rows_name_file_and_line(tmp_path):
    path = tmp_path / "dev.json"
    path.write_text(json.dumps(_row(0)) + "\n{not json\n")
    with pytest.raises(RecordError, match=r"dev.json:2: not valid JSON"):
        read_medmcqa(path)
    path.write_text(json.dumps(_row(0)) + "\n" + json.dumps(_row(1, cop=5)) + "\n")
    with pytest.raises(RecordError, match=r"dev.json:2: cop=5; expected the 1-based correct option 1..4"):
        read_medmcqa(path)
    path.write_text(json.dumps({k: v for k, v in _row(0).items() if k != "opd"}) + "\n")
    with pytest.raises(RecordError, match=r"dev.json:1: missing field\(s\) \['opd'\]"):
        read_medmcqa(path)


def test_malformed_mmlu_rows_name_file_and_line(tmp_path):
    path = tmp_path / "anatomy_val.csv"
    path.write_text('Q1?,a,b,c,d,A\n"Q2, with a comma?",a,b,c,d,B\nQ3?,a,b,c,E\n')
    with pytest.raises(RecordError, match=r"anatomy_val.csv:3: 5 columns; expected 6"):
        read_mmlu_file(path)
    path.write_text('Q1?,a,b,c,d,A\nQ2?,a,b,c,d,E\n')
    with pytest.raises(RecordError, match=r"anatomy_val.csv:2: answer='E'"):
        read_mmlu_file(path)
    path.write_text('Q1?,a,b,c,d,A\n"Q2, with a comma?",a,b,c,d,B\n')
    assert [r.question for r in read_mmlu_file(path)] == ["Q1?", "Q2, with a comma?"]
    with pytest.raises(RecordError, match="must be named <subject>_dev.csv"):
        read_mmlu_file(tmp_path.joinpath("x.csv").with_name("anatomy.csv").resolve())


def test_malformed_pubmedqa_item_names_the_pmid(tmp_path):
    path = tmp_path / "ori_pqal.json"
    path.write_text(json.dumps({"1": {"QUESTION": "Q?", "CONTEXTS": ["c"], "final_decision": "perhaps"}}))
    with pytest.raises(RecordError, match=r"ori_pqal.json pmid 1: final_decision='perhaps'"):
        read_pubmedqa(path)
    path.write_text(json.dumps({"7": {"QUESTION": "Does X cause Y?", "CONTEXTS": ["One.", "Two."], "final_decision": "no"}}))
    (plain,) = read_pubmedqa(path)
    (with_context,) = read_pubmedqa(path, with_context=True)
    assert (plain.id, plain.question, plain.gold) == ("pubmedqa-7", "Does X cause Y?", "B")
    assert with_context.question == "Context: One.\nTwo.\nQuestion: Does X cause Y?"
