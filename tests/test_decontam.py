"""Decontamination against the evaluation suite: the index, its three tests, the raw-file readers."""

from __future__ import annotations

import dataclasses
import json

import pytest

from medssr_nemo.data.decontam import Decontaminator, eval_decontaminator, normalise_text
from medssr_nemo.data.eval_files import (
    read_medxpertqa_file,
    read_paper_eval_file,
    read_rarebench_file,
)
from medssr_nemo.data.eval_suite import load_eval_suite
from medssr_nemo.records import QuestionRecord, RecordError

LONG_STEM = ("A 34-year-old woman presents with episodic palpitations, tremor and weight loss over "
             "three months despite an increased appetite and frequent loose stools.")


def rec(id: str, question: str, options: list[str], **kw) -> QuestionRecord:
    return QuestionRecord(id=id, question=question, options=options, **kw)


@pytest.fixture()
def small_index() -> Decontaminator:
    evals = [
        rec("ev-1", LONG_STEM + " Which is the most likely diagnosis?",
            ["Graves disease", "Toxic adenoma", "Hashimoto thyroiditis", "Factitious thyrotoxicosis"]),
        rec("ev-2", "Which of the following is true?", ["Aspirin is an NSAID", "Insulin is a lipid"]),
        rec("ev-3", "Skeletal muscles", ["Are striated", "Have no nuclei", "Are involuntary", "Lack myosin"]),
    ]
    return Decontaminator(evals, extra_ids=["rarebench-MME-0"], ngram_size=13)


def test_normalisation_folds_case_punctuation_and_whitespace():
    assert normalise_text("  Which   of the FOLLOWING,\nis true?!") == "which of the following is true"
    assert normalise_text("Na+ = 139 mEq/L") == "na 139 meq l"


def test_exact_id_is_found_for_questions_and_case_only_ids(small_index):
    assert small_index.is_contaminated(rec("ev-2", "anything else", ["x", "y"])) == "exact id"
    assert small_index.is_contaminated(rec("rarebench-MME-0", "q", ["x", "y"])) == "exact id"


def test_exact_text_survives_case_punctuation_and_option_order(small_index):
    copy = rec("train-1", LONG_STEM.upper().replace(",", " ;") + "  which is the most likely DIAGNOSIS",
               ["Factitious thyrotoxicosis", "Hashimoto thyroiditis", "Toxic adenoma", "Graves disease!"])
    found = small_index.check(copy)
    assert (found.reason, found.eval_id) == ("exact text", "ev-1")


def test_specific_stem_alone_is_a_copy_even_with_new_options(small_index):
    copy = rec("train-2", LONG_STEM + " Which is the most likely diagnosis?", ["Pheochromocytoma", "Anxiety"])
    assert small_index.is_contaminated(copy) == "exact text"


def test_generic_stem_with_other_options_is_not_a_copy(small_index):
    other = rec("train-3", "Which of the following is TRUE?", ["The liver makes bile", "The heart has 3 chambers"])
    assert small_index.is_contaminated(other) is None


def test_short_stem_with_half_the_options_is_a_copy(small_index):
    shared_half = rec("train-4", "Skeletal muscles:", ["Are striated", "Have no nuclei", "Contain actin", "Are smooth"])
    one_shared = rec("train-5", "Skeletal muscles:", ["Are striated", "Are red", "Contain actin", "Are smooth"])
    assert small_index.is_contaminated(shared_half) == "exact text"
    assert small_index.is_contaminated(one_shared) is None


def test_a_shared_13_gram_is_overlap_and_a_12_gram_is_not(small_index):
    words = LONG_STEM.split()
    # 13 consecutive words of the evaluation stem inside a new question
    overlap = rec("train-6", "New case. " + " ".join(words[2:15]) + " Next step?", ["Beta blocker", "Surgery"])
    assert small_index.check(overlap).reason == "ngram overlap"
    near = rec("train-7", "New case. " + " ".join(words[2:14]) + " Next step?", ["Beta blocker", "Surgery"])
    assert small_index.is_contaminated(near) is None


def test_ngram_size_is_configurable():
    evals = [rec("ev", "alpha beta gamma delta epsilon zeta", ["x", "y"])]
    query = rec("q", "one two gamma delta epsilon three", ["p", "q"])
    assert Decontaminator(evals, ngram_size=3).is_contaminated(query) == "ngram overlap"
    assert Decontaminator(evals, ngram_size=4).is_contaminated(query) is None


def test_ngrams_shared_by_many_evaluation_items_are_boilerplate():
    lead = "oxygen saturation is 98 percent on room air and physical exam is notable"
    evals = [rec(f"ev-{i}", f"Case {i} unique words {i} here. {lead} for finding {i}.", ["x", "y"]) for i in range(3)]
    query = rec("q", f"Another patient entirely. {lead} for nothing.", ["p", "q"])
    assert Decontaminator(evals, ngram_size=6, boilerplate_min_items=3).is_contaminated(query) is None
    assert Decontaminator(evals, ngram_size=6, boilerplate_min_items=4).is_contaminated(query) == "ngram overlap"


def test_split_keeps_order_and_reports_reasons(small_index):
    clean = rec("c", "What is the capital organ of bile production?", ["Liver", "Spleen"])
    dirty = rec("ev-3", "x", ["a", "b"])
    kept, removed = small_index.split([clean, dirty, clean])
    assert [r.id for r in kept] == ["c", "c"]
    assert [(r.id, why.reason) for r, why in removed] == [("ev-3", "exact id")]


# --- the real evaluation suite ---------------------------------------------------------------

@pytest.fixture(scope="module")
def suite_index():
    return load_eval_suite(), eval_decontaminator()


def test_suite_holds_every_benchmark_with_the_documented_sizes(suite_index):
    suite, _ = suite_index
    assert suite.counts() == {
        "bioasq": 782, "lancet": 412, "medbullets": 308, "medmcqa": 1200, "medqa": 1273,
        "medxpertqa": 1861 + 589, "mmlu": 1089, "nejm": 603, "pubmedqa": 500,
        "rarebench": 624 + 40 + 88 + 370 + 75,
    }
    assert all(r.gold in r.letters for r in suite.records)
    assert len(suite.file_sha256) == 8 + 2 + 5


def test_every_evaluation_item_under_a_new_id_is_caught_by_its_text(suite_index):
    suite, index = suite_index
    missed = [r.id for r in suite.records if index.is_contaminated(dataclasses.replace(r, id="train-" + r.id)) is None]
    assert missed == []


def test_medqa_items_with_a_stray_quote_line_keep_four_options(suite_index):
    suite, _ = suite_index
    medqa = [r for r in suite.records if r.source == "medqa"]
    assert {len(r.options) for r in medqa} == {4}
    assert not any(o.strip() in ('"', "'") for r in medqa for o in r.options)


def test_medxpertqa_stem_excludes_the_repeated_answer_choices(suite_index):
    suite, _ = suite_index
    mx = [r for r in suite.records if r.source == "medxpertqa"]
    assert all("Answer Choices" not in r.question and len(r.options) == 10 for r in mx)


# --- malformed raw files ---------------------------------------------------------------------

def test_malformed_paper_item_names_file_and_index(tmp_path):
    path = tmp_path / "test_short_x.json"
    path.write_text(json.dumps([
        {"id": "x-1", "question": "Stem?\nA. a\nB. b", "gold": "A"},
        {"id": "x-2", "question": "Stem without options", "gold": "A"},
    ]))
    with pytest.raises(RecordError, match=r"test_short_x.json item 1 \(id 'x-2'\)"):
        read_paper_eval_file(path)
    path.write_text(json.dumps([{"id": "x-1", "question": "Stem?\nA. a\nB. b", "gold": "C"}]))
    with pytest.raises(RecordError, match="item 0.*gold='C'"):
        read_paper_eval_file(path)


def test_malformed_medxpertqa_line_names_file_and_line(tmp_path):
    path = tmp_path / "medxpertqa_r_test.jsonl"
    good = {"realidx": "Text-1", "question": "Q?\nAnswer Choices: (A) a (B) b", "options": {"A": "a", "B": "b"},
            "answer_idx": "B", "answer": "b"}
    bad = {**good, "realidx": "Text-2", "options": {"A": "a", "C": "c"}}
    path.write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n")
    with pytest.raises(RecordError, match=r"medxpertqa_r_test.jsonl:2: 'options' must be an object keyed A, B"):
        read_medxpertqa_file(path)
    path.write_text(json.dumps(good) + "\n")
    (only,) = read_medxpertqa_file(path)
    assert (only.id, only.question, only.gold, only.meta["split"]) == ("medxpertqa-Text-1", "Q?", "B", "reasoning")


def test_malformed_rarebench_line_names_file_and_line(tmp_path):
    path = tmp_path / "MME.jsonl"
    path.write_text('{"Phenotype": ["HP:1"], "RareDisease": ["OMIM:1"], "Department": null}\n{"Phenotype": []}\n')
    with pytest.raises(RecordError, match=r"MME.jsonl:2: expected"):
        read_rarebench_file(path)
