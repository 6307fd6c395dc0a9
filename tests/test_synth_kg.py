"""The kg synthesizer end to end on the real HPO release and the real training/evaluation data:
the rare share follows alpha, output is byte-identical per seed and after a resume, every key is
the knowledge base's, difficulty moves the distractors, and nothing repeats an evaluation item."""

from __future__ import annotations

import json
import random
import re
from collections import Counter

import pytest

from medssr_nemo.config import load_config
from medssr_nemo.knowledge.hpo import HPOKnowledge
from medssr_nemo.records import read_records
from medssr_nemo.synthesis.kg import KGSynthesizer
from medssr_nemo.synthesis.phrasing import option_phrase
from medssr_nemo.synthesis.kg_questions import INHERITANCE_MODES, KGQuestionBuilder, Unbuildable, display_name
from medssr_nemo.synthesis.from_config import build_decontaminator, run_synthesis
from medssr_nemo.synthesis.chunked import Interrupted
from medssr_nemo.synthesis.seeds import load_seed_pool
from medssr_nemo.synthesis.patient import read_patient

# a stem whose first sentence introduces a patient is a case, and a case states an age
_CASE = re.compile(r"\b(boy|girl|man|woman|newborn|neonate|infant|child|patient|male|female)\b", re.I)


def _cfg(tmp_path, *overrides):
    return load_config("base", [f"output_dir={tmp_path}", "synthesis.show_progress=false", *overrides])


@pytest.fixture(scope="module")
def hpo():
    return HPOKnowledge.load()


@pytest.fixture(scope="module")
def decontaminator(tmp_path_factory):
    return build_decontaminator(_cfg(tmp_path_factory.mktemp("d")))


@pytest.fixture(scope="module")
def seeds(decontaminator):
    return load_seed_pool(["medmcqa", "mmlu"], decontaminator)[0]


@pytest.fixture(scope="module")
def builder(hpo, seeds):
    if "builder" not in _SHARED:
        _SHARED["builder"] = KGSynthesizer(hpo, seeds, seed=7).builder
    return _SHARED["builder"]


_SHARED: dict[str, KGQuestionBuilder] = {}


def _run(cfg, hpo, decontaminator, seeds, **kwargs):
    """``run_synthesis`` with the module's knowledge, decontamination index and seeds; the kg
    synthesizer shares one question builder (its similarity index) across runs."""
    if "synthesizer" not in kwargs:
        kwargs["synthesizer"] = KGSynthesizer(hpo, seeds, seed=cfg.synthesis.seed, builder=_SHARED.get("builder"))
        _SHARED.setdefault("builder", kwargs["synthesizer"].builder)
    return run_synthesis(cfg, knowledge=hpo, decontaminator=decontaminator, seeds=seeds, **kwargs)


def test_alpha_03_over_2000_questions_gives_30_percent_rare(tmp_path, hpo, decontaminator, seeds):
    cfg = _cfg(tmp_path, "synthesis.alpha=0.3", "synthesis.num_questions=2000", "synthesis.seed=7")
    out = _run(cfg, hpo, decontaminator, seeds)
    rows = [json.loads(line) for line in out.records_path.read_text().splitlines()]
    assert len(rows) == 2000
    assert all(isinstance(r["question"], str) and r["question"] and isinstance(r["rare"], bool) for r in rows)
    share = sum(r["rare"] for r in rows) / len(rows)
    assert abs(share - 0.3) <= 0.02
    card = json.loads(out.card_path.read_text())
    assert card["distribution"]["rare"]["achieved"] == pytest.approx(share)
    assert card["distribution"]["question_type"]["tv_distance"] <= 0.01
    assert card["distribution"]["difficulty"]["tv_distance"] <= 0.01
    assert set(card["filters"]["dropped"]) == {"validity", "decontamination", "near_duplicate"}
    assert card["inputs"]["knowledge"]["files"]["hpoa"] and card["inputs"]["eval_files"]
    # independent re-check: no output record repeats an evaluation item
    records = read_records(out.records_path)
    assert [r.id for r in records if decontaminator.check(r) is not None] == []
    rare = [r for r in records if r.rare]
    assert all(r.source == "kg" and r.knowledge_ids and r.gold in r.letters for r in records)
    assert Counter(r.question_type for r in rare).keys() == {"diagnosis", "gene", "inheritance", "not_expected"}
    # the done-when thresholds, read from the card's audit of this very set (the wall time
    # is measured in docs/synthesis.md, not asserted here)
    audit = card["audit"]
    assert audit["questions"] == 2000 and audit["checkable"] == len(rare)
    assert audit["mix"]["rare_share"] == pytest.approx(share) and abs(audit["mix"]["rare_share"] - 0.3) <= 0.02
    assert audit["overall"]["contradicted"] == 0
    assert audit["overall"]["leakage_share"] < 0.01
    assert audit["overall"]["ambiguous_share"] < 0.05
    assert audit["overall"]["incoherent"] == 0, audit["examples"].get("incoherent")
    for qtype, row in audit["by_question_type"].items():
        assert row["contradicted"] == 0, (qtype, audit["examples"].get("contradicted"))
    # every case stem states an age (read independently of the audit's own "no age stated" check)
    cases = [r for r in rare if _CASE.search(r.question.split(".", 1)[0]) and r.question_type != "not_expected"]
    assert cases and [r.id for r in cases if read_patient(r.question).age_years is None] == []


def test_alpha_zero_gives_no_rare_questions(tmp_path, hpo, decontaminator, seeds):
    out = _run(_cfg(tmp_path, "synthesis.alpha=0", "synthesis.num_questions=120"), hpo, decontaminator, seeds)
    records = read_records(out.records_path)
    assert len(records) == 120 and not any(r.rare for r in records)
    assert all(r.meta["origin"] == "seed" for r in records)


def test_same_seed_gives_byte_identical_output_and_resume_matches(tmp_path, hpo, decontaminator, seeds):
    args = ("synthesis.alpha=0.5", "synthesis.num_questions=240", "synthesis.chunk_size=80", "synthesis.seed=3")
    first = _run(_cfg(tmp_path / "a", *args), hpo, decontaminator, seeds)
    second = _run(_cfg(tmp_path / "b", *args), hpo, decontaminator, seeds)
    assert first.records_path.read_bytes() == second.records_path.read_bytes()
    other = _run(_cfg(tmp_path / "c", *args[:-1], "synthesis.seed=4"), hpo, decontaminator, seeds)
    assert other.records_path.read_bytes() != first.records_path.read_bytes()

    # a run killed after its first chunk resumes without redoing it, into the same bytes
    cfg = _cfg(tmp_path / "d", *args)
    with pytest.raises(Interrupted):
        _run(cfg, hpo, decontaminator, seeds, stop_after_chunks=1)
    assert (tmp_path / "d" / ".synthetic.parts" / "chunk-00000.json").exists()
    assert not (tmp_path / "d" / "synthetic.jsonl").exists()
    synthesizer = KGSynthesizer(hpo, seeds, seed=3, builder=_SHARED["builder"])
    seen: list[int] = []
    original = synthesizer.synthesize
    synthesizer.synthesize = lambda slots, attempt: (seen.extend(s.index for s in slots), original(slots, attempt))[1]
    resumed = _run(cfg, hpo, decontaminator, seeds, synthesizer=synthesizer)
    assert min(seen) >= 80                   # chunk 0 (slots 0..79) was reloaded, not regenerated
    assert resumed.records_path.read_bytes() == first.records_path.read_bytes()
    assert resumed.card["run"] == {"chunks": 3, "chunks_reloaded": 1}
    assert not (tmp_path / "d" / ".synthetic.parts").exists()
    assert _run(cfg, hpo, decontaminator, seeds).skipped      # finished: a rerun does nothing


def test_category_weights_are_met_and_unknown_ones_rejected(tmp_path, hpo, decontaminator, seeds):
    cfg = _cfg(tmp_path, "synthesis.alpha=1", "synthesis.num_questions=40",
               "+synthesis.categories.eye=1", "+synthesis.categories.nervous_system=1")
    out = _run(cfg, hpo, decontaminator, seeds)
    records = read_records(out.records_path)
    assert Counter(r.category for r in records) == {"eye": 20, "nervous_system": 20}
    assert out.card["distribution"]["category"]["tv_distance"] == 0.0
    bad = _cfg(tmp_path / "bad", "synthesis.alpha=1", "synthesis.num_questions=4", "+synthesis.categories.spleen=1")
    with pytest.raises(ValueError, match=r"synthesis.categories names \['spleen'\].*allowed: \["):
        _run(bad, hpo, decontaminator, seeds)


def test_a_planted_evaluation_question_is_dropped(tmp_path, hpo, decontaminator, seeds):
    from medssr_nemo.data.eval_files import paper_eval_path, read_paper_eval_file

    planted = read_paper_eval_file(paper_eval_path("medqa"))[0]
    pool = [planted, *seeds[:20]]
    synthesizer = KGSynthesizer(hpo, pool, seed=0, builder=_SHARED.get("builder"))
    synthesizer._seed_order = list(range(len(pool)))        # the planted seed comes first
    cfg = _cfg(tmp_path, "synthesis.alpha=0", "synthesis.num_questions=3")
    out = _run(cfg, hpo, decontaminator, pool, synthesizer=synthesizer)
    records = read_records(out.records_path)
    assert len(records) == 3 and planted.question not in {r.question for r in records}
    assert out.card["filters"]["dropped"]["decontamination"] == {"exact text": 1}


def test_planted_near_duplicate_seeds_are_dropped(tmp_path, hpo, decontaminator, seeds):
    original = seeds[0]
    reworded = original.__class__(**{**original.to_dict(), "id": "planted-copy",
                                     "question": original.question.rstrip("?:. ") + " ?"})
    pool = [original, reworded, *seeds[1:10]]
    synthesizer = KGSynthesizer(hpo, pool, seed=0, builder=_SHARED.get("builder"))
    synthesizer._seed_order = list(range(len(pool)))
    out = _run(_cfg(tmp_path, "synthesis.alpha=0", "synthesis.num_questions=4"), hpo, decontaminator, pool,
               synthesizer=synthesizer)
    assert out.card["filters"]["dropped"]["near_duplicate"] == {"near duplicate of a kept question": 1}
    # slot 1 drew the reworded copy, was dropped, and its retry took a spare seed past the 4
    # planned ones, so it cannot collide with another slot's first seed
    retry = synthesizer._seed_position(1, 1)
    assert 4 <= retry < len(pool)
    expected = [original.id, pool[retry].id, pool[2].id, pool[3].id]
    assert [r.meta["seed_id"] for r in read_records(out.records_path)] == expected


# ---- the questions themselves ----------------------------------------------------------------

def _build(builder, qtype, difficulty, n=12, seed=0):
    rng = random.Random(seed)
    built = []
    for target in builder.eligible[qtype]:
        if len(built) == n:
            break
        if rng.random() > 0.05:
            continue
        try:
            built.append((target, builder.build(qtype, difficulty, target, random.Random(target))))
        except Unbuildable:
            continue
    return built


def test_difficulty_moves_distractor_similarity(builder):
    means = {}
    for level in ("easy", "medium", "hard"):
        built = _build(builder, "diagnosis", level, n=15)
        means[level] = sum(q.meta["distractor_similarity"] for _, q in built) / len(built)
    assert means["hard"] > means["medium"] > means["easy"]


def test_diagnosis_key_is_the_disease_and_distractors_cover_the_case_worse(builder):
    for target, question in _build(builder, "diagnosis", "hard"):
        profile = builder.profiles[target]
        assert question.key == display_name(profile) and question.key not in question.distractors
        findings = [k for k in question.knowledge_ids if k.startswith("HP:")]
        assert len(findings) >= 3
        key_score = builder.coverage.score(target, findings)
        for other in question.meta["distractor_ids"]:
            assert not builder.similarity.covers(builder.row[other], findings)
            assert builder.coverage.score(builder.row[other], findings) <= key_score - builder.margin
        assert len({q.lower() for q in [question.key, *question.distractors]}) == 5


def test_gene_inheritance_and_not_expected_keys_come_from_the_profile(builder):
    for target, question in _build(builder, "gene", "medium"):
        profile = builder.profiles[target]
        assert question.key in profile.genes and not set(question.distractors) & set(profile.genes)
    for target, question in _build(builder, "inheritance", "easy"):
        profile = builder.profiles[target]
        (mode,) = [m for m in profile.inheritance if m in INHERITANCE_MODES]
        assert question.key == INHERITANCE_MODES[mode][0]
        assert "recessive" not in profile.name.lower() and "dominant" not in profile.name.lower()
    for target, question in _build(builder, "not_expected", "easy"):
        profile = builder.profiles[target]
        assert question.key in {option_phrase(p.name) for p in profile.excluded}
        assert set(question.distractors) <= {option_phrase(p.name) for p in profile.phenotypes}


def test_vignette_age_follows_the_onset(builder):
    from medssr_nemo.knowledge.interfaces import DiseaseProfile
    from medssr_nemo.synthesis.vignette import onset_of, person

    rng = random.Random(0)
    assert person(DiseaseProfile("X:1", "Some disease", onset=["Congenital onset"]), "female", rng).text == "A newborn girl"
    infant = person(DiseaseProfile("X:2", "Some disease", onset=["Infantile onset"]), "male", rng)
    assert infant.onset == "Infantile onset" and infant.text.endswith("-month-old boy")
    assert 0 < infant.patient.age_years < 1
    assert onset_of(DiseaseProfile("X:3", "Lethal infantile mitochondrial myopathy")) == "Infantile onset"
    # no onset anywhere: an age is still stated
    unknown = person(DiseaseProfile("X:4", "Some disease"), "female", rng)
    assert unknown.patient.age_years >= 18 and "-year-old woman" in unknown.text
    developmental = person(DiseaseProfile("X:5", "Some disease"), "female", rng, childlike=True)
    assert developmental.patient.age_years <= 12 and "-year-old girl" in developmental.text


def test_x_linked_recessive_vignettes_are_male(builder):
    rows = [i for i in builder.eligible["diagnosis"]
            if builder.profiles[i].inheritance == ["X-linked recessive inheritance"]][:10]
    assert rows
    for row in rows:
        question = builder.diagnosis(row, "easy", random.Random(row))
        assert any(word in question.stem for word in (" boy ", " man ", " male ", "boy ", "man "))
        assert "girl" not in question.stem and "woman" not in question.stem
