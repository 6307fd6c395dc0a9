"""Quality filters: structural validity, MinHash/LSH near-duplicate removal, decontamination with
the data layer's Decontaminator over a real evaluation file, and the drop report."""

from __future__ import annotations

import pytest

from medssr_nemo.data.decontam import Decontaminator
from medssr_nemo.data.eval_files import paper_eval_path, read_paper_eval_file
from medssr_nemo.records import QuestionRecord
from medssr_nemo.synthesis.filters import QualityFilter, shingles, validity_problem

STEM = ("A 34-year-old woman presents with progressive proximal muscle weakness, a heliotrope rash on the "
        "upper eyelids and scaly papules over the knuckles. Serum creatine kinase is elevated. Which "
        "antibody is most specific for her condition?")


def q(id, stem=STEM, options=("Anti-Jo-1", "Anti-Mi-2", "Anti-dsDNA", "Anti-centromere"), gold="B"):
    return QuestionRecord(id=id, question=stem, options=list(options), gold=gold)


@pytest.mark.parametrize("record, reason", [
    (q("a", stem="  "), "empty stem"),
    (q("b", options=["x", "y", "z", "w", "v", "u", "t", "s", "r", "p", "o"]), "more than 10 options"),
    (q("c", options=["Anti-Jo-1", "anti jo 1", "Anti-dsDNA"]), "duplicate options"),
    (q("d", options=["Anti-Jo-1", " ", "Anti-dsDNA"]), "empty option"),
    (q("e", gold=None), "no key"),
    (q("f"), None),
])
def test_validity(record, reason):
    assert validity_problem(record) == reason


def test_validity_bounds_are_configurable():
    assert validity_problem(q("g", options=["a", "b", "c"], gold="A"), min_options=4) == "fewer than 4 options"


def test_near_duplicates_are_dropped_and_distinct_questions_kept():
    quality = QualityFilter(dedup=True)
    assert quality.admit(q("orig")) is None
    reworded = q("copy", stem=STEM.replace("progressive", "slowly progressive"),
                 options=("Anti-Mi-2", "Anti-Jo-1", "Anti-Scl-70", "Anti-dsDNA"), gold="A")
    assert quality.admit(reworded) == ("near_duplicate", "near duplicate of a kept question")
    # same template, different disease and key: not a duplicate
    other = q("other", stem=STEM.replace("heliotrope rash on the upper eyelids and scaly papules over the knuckles",
                                         "malar rash, arthritis and oral ulcers"),
              options=("Anti-Smith", "Anti-Mi-2", "Anti-Jo-1", "Anti-centromere"), gold="A")
    assert quality.admit(other) is None
    report = quality.report.to_dict()
    assert report["checked"] == 3 and report["kept"] == 2
    assert report["dropped"]["near_duplicate"] == {"near duplicate of a kept question": 1}
    assert report["examples"]["near_duplicate: near duplicate of a kept question"][0].startswith("copy ~ orig")


def test_template_questions_with_the_same_options_but_different_subjects_survive():
    quality = QualityFilter()
    modes = ["Autosomal dominant", "Autosomal recessive", "X-linked recessive", "X-linked dominant", "Mitochondrial"]
    kept = [quality.admit(q(f"inh{i}", stem=f"What is the mode of inheritance of {name}?", options=modes,
                            gold="AB"[i % 2])) for i, name in enumerate(
        ["Marfan syndrome", "Wilson disease", "Gaucher disease", "Fabry disease"])]
    assert kept == [None, None, None, None]
    assert "|| autosomal dominant" in " ".join(shingles(q("s", stem="What is it?", options=modes, gold="A")))


def test_decontamination_drops_a_planted_evaluation_question():
    medqa = read_paper_eval_file(paper_eval_path("medqa"))
    quality = QualityFilter(decontaminator=Decontaminator(medqa))
    planted = medqa[10]
    copy = QuestionRecord(id="kg-0-000001", question=planted.question, options=list(reversed(planted.options)),
                          gold="A")
    assert quality.admit(copy) == ("decontamination", "exact text")
    words = planted.question.split()
    reworded = QuestionRecord(id="kg-0-000002", question=" ".join(["Consider", "this:", *words[:-3], "now?"]),
                              options=list(planted.options), gold="A")
    assert quality.admit(reworded) == ("decontamination", "ngram overlap")
    assert quality.admit(q("clean")) is None
    report = quality.report.to_dict()
    assert report["dropped"]["decontamination"] == {"exact text": 1, "ngram overlap": 1}
    assert planted.id in report["examples"]["decontamination: exact text"][0]
