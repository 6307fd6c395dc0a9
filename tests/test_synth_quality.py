"""Synthetic-question quality: merged disease profiles, leakage, distinctiveness, coherent patients,
clinical phrasing, distractor neighbourhoods, and the audit that finds each planted defect."""

from __future__ import annotations

import json
import random
import re

import pytest

from medssr_nemo.knowledge.hpo import HPOKnowledge
from medssr_nemo.knowledge.interfaces import DiseaseProfile, PhenotypeAnnotation
from medssr_nemo.knowledge.merge import merge_profiles, merged_knowledge
from medssr_nemo.knowledge.names import family_name
from medssr_nemo.knowledge.obo import Ontology, Term
from medssr_nemo.records import QuestionRecord
from medssr_nemo.synthesis.audit import Auditor, audit_records
from medssr_nemo.synthesis.kg import KGSynthesizer
from medssr_nemo.synthesis.kg_questions import CORE_MODES, INHERITANCE_MODES, main_inheritance
from medssr_nemo.synthesis.leakage import LeakageChecker
from medssr_nemo.synthesis.patient import Patient, PatientRules, age_fits_onset, read_patient
from medssr_nemo.synthesis.phrasing import clinical_phrase, is_vague, option_phrase


# -- merging twins, on a hand-made ontology --------------------------------------------------------
def _toy_ontology() -> Ontology:
    terms = {
        "HP:0000001": Term("HP:0000001", "All"),
        "HP:0000118": Term("HP:0000118", "Phenotypic abnormality", parents=["HP:0000001"]),
        "HP:0000100": Term("HP:0000100", "Impaired platelet aggregation", parents=["HP:0000118"]),
        "HP:0000101": Term("HP:0000101", "Impaired ADP-induced platelet aggregation", parents=["HP:0000100"]),
        "HP:0000200": Term("HP:0000200", "Epistaxis", parents=["HP:0000118"]),
        "HP:0000300": Term("HP:0000300", "Seizure", parents=["HP:0000118"]),
    }
    return Ontology(terms=terms, alt_ids={})


def _ann(hpo_id: str, name: str, frequency: float | None = None) -> PhenotypeAnnotation:
    return PhenotypeAnnotation(hpo_id, name, frequency)


def test_exact_twins_merge_and_a_not_against_a_present_descendant_drops_both():
    orpha = DiseaseProfile("ORPHA:849", "Glanzmann thrombasthenia", source_ids=["ORPHA:849", "OMIM:273800"],
                           phenotypes=[_ann("HP:0000200", "Epistaxis", 0.5)],
                           excluded=[_ann("HP:0000100", "Impaired platelet aggregation"),
                                     _ann("HP:0000300", "Seizure")],
                           genes=["ITGA2B"])
    omim = DiseaseProfile("OMIM:273800", "GLANZMANN THROMBASTHENIA 1", source_ids=["OMIM:273800", "ORPHA:849"],
                          phenotypes=[_ann("HP:0000101", "Impaired ADP-induced platelet aggregation", 1.0),
                                      _ann("HP:0000200", "Epistaxis", 0.9)],
                          inheritance=["Autosomal recessive inheritance"], genes=["ITGB3"])
    other = DiseaseProfile("OMIM:1", "Unrelated", source_ids=["OMIM:1"], phenotypes=[_ann("HP:0000300", "Seizure")])
    merged = merge_profiles([omim, orpha, other], _toy_ontology())
    assert merged.report.profiles == 2 and merged.report.merged_groups == 1
    glanzmann = merged.profile_of("OMIM:273800")
    assert glanzmann is merged.profile_of("ORPHA:849") and glanzmann.id == "ORPHA:849"
    assert glanzmann.genes == ["ITGA2B", "ITGB3"] and glanzmann.inheritance == ["Autosomal recessive inheritance"]
    assert "GLANZMANN THROMBASTHENIA 1" in glanzmann.synonyms
    # the NOT of the ancestor and the present descendant are both gone; the unrelated NOT stays
    assert {p.hpo_id for p in glanzmann.phenotypes} == {"HP:0000200"}
    assert {p.hpo_id for p in glanzmann.excluded} == {"HP:0000300"}
    assert next(p for p in glanzmann.phenotypes).frequency == 0.9      # the more informative row
    (conflict,) = merged.report.conflicts
    assert (conflict.excluded, conflict.present) == ("HP:0000100", ["HP:0000101"])
    assert conflict.excluded_from == ["ORPHA:849"] and conflict.present_from == ["OMIM:273800"]
    assert merged.report.dropped_present == 1 and merged.report.dropped_excluded == 1


@pytest.fixture(scope="module")
def hpo():
    return HPOKnowledge.load()


@pytest.fixture(scope="module")
def builder(hpo):
    return KGSynthesizer(hpo, [], seed=3).builder


@pytest.fixture(scope="module")
def auditor(builder):
    return Auditor(builder)


def test_no_merged_profile_denies_what_it_asserts_on_the_real_release(hpo):
    merged = merged_knowledge(hpo)
    onto = hpo.ontology
    for profile in merged.profiles:
        denied = {e.hpo_id for e in profile.excluded}
        for p in profile.phenotypes:
            assert not denied & onto.ancestors(p.hpo_id), (profile.id, p.hpo_id)
    glanzmann = merged.profile_of("OMIM:273800")
    assert glanzmann is merged.profile_of("ORPHA:849")
    assert "HP:0004866" not in {e.hpo_id for e in glanzmann.excluded}   # ADP aggregation: asserted by OMIM


# -- leakage --------------------------------------------------------------------------------------
def test_leakage_catches_names_main_words_eponyms_and_genes(hpo):
    checker = LeakageChecker.from_ontology(hpo.ontology)
    dorv = DiseaseProfile("ORPHA:3426", "Double outlet right ventricle")
    stem = "A newborn boy is examined because of hypoplastic left heart and outlet of the right ventricle, double."
    assert "main word" in checker.disease_leak(stem, dorv)
    assert checker.disease_leak("A newborn boy is examined because of a ventricular septal defect.", dorv) is None
    glanzmann = DiseaseProfile("ORPHA:849", "Glanzmann thrombasthenia", genes=["ITGA2B"])
    assert "distinctive" in checker.disease_leak("Her mother had a Glanzmann-like bleeding disorder.", glanzmann)
    assert "gene" in checker.disease_leak("Sequencing found a variant in ITGA2B.", glanzmann)
    assert checker.disease_leak("She has epistaxis and menorrhagia.", glanzmann) is None
    # other question types: the key itself; an option equal to the disease name
    assert checker.stem_leak("Variants in ITGA2B cause which disease?", "gene", "ITGA2B", glanzmann, True)
    assert checker.stem_leak("What is the autosomal mode of X?", "inheritance", "Autosomal recessive", None)
    assert checker.option_leak(["Epistaxis", "Glanzmann thrombasthenia"], 0, "not_expected", glanzmann)
    assert checker.option_leak(["Glanzmann thrombasthenia", "Bernard-Soulier syndrome"], 0, "diagnosis",
                               glanzmann) is None


# -- coherent patients and phrasing ---------------------------------------------------------------
def test_clinical_phrases_rewrite_ontology_labels():
    assert clinical_phrase("Aplasia/Hypoplasia of the thymus") == "thymic aplasia or hypoplasia"
    assert clinical_phrase("Aplasia/Hypoplasia of the 3rd toe") == "aplasia or hypoplasia of the 3rd toe"
    assert clinical_phrase("Intellectual disability, severe") == "severe intellectual disability"
    assert clinical_phrase("Abnormality of the liver") == "abnormalities of the liver"
    assert clinical_phrase("EEG abnormality") == "an abnormal EEG"
    assert clinical_phrase("Arnold-Chiari type I malformation") == "Arnold-Chiari type I malformation"
    assert clinical_phrase("Seizure") == "seizure" and option_phrase("seizure") == "Seizure"
    assert clinical_phrase("Stiff/rigid neck") == "stiff or rigid neck"
    assert is_vague("Abnormality of movement") and not is_vague("Focal seizure")
    # morphology headings read as a structural abnormality of a named part; adjectives and cells stay
    assert clinical_phrase("Abnormal Descemet membrane morphology") == "a structural abnormality of the Descemet membrane"
    assert clinical_phrase("Abnormal ear morphology") == "a structural abnormality of the ear"
    assert clinical_phrase("Abnormal vertebral morphology") == "abnormal vertebral morphology"
    assert clinical_phrase("Abnormal eosinophil morphology") == "abnormal eosinophil morphology"
    # laboratory headings read as levels
    assert clinical_phrase("Elevated circulating creatine kinase concentration") == "elevated circulating creatine kinase levels"
    assert clinical_phrase("Decreased CSF leucine concentration") == "low CSF leucine levels"
    assert clinical_phrase("Abnormal circulating IgM concentration") == "abnormal circulating IgM levels"
    # lesions and paired parts in the plural a case uses; one bare part stays singular
    assert clinical_phrase("Papule") == "papules" and clinical_phrase("Skin vesicle") == "skin vesicles"
    assert clinical_phrase("Erythematous plaque") == "erythematous plaques" and clinical_phrase("Comedo") == "comedones"
    assert clinical_phrase("Sparse eyebrow") == "sparse eyebrows" and clinical_phrase("Natal tooth") == "natal teeth"
    assert clinical_phrase("Hand tremor") == "hand tremor" and clinical_phrase("Ear") == "ear"
    assert option_phrase("Papule") == "Papules"


def test_no_raw_morphology_or_level_heading_in_a_built_case(builder):
    raw = re.compile(r"\b(abnormal [a-z ]+ morphology|concentration)\b|(?:^|\s)(papule|skin vesicle|macule|pustule)\b")
    seen = 0
    for row in builder.eligible["diagnosis"][::41]:
        try:
            vignette = builder._vignette(row, random.Random(row))
        except Exception:
            continue
        seen += 1
        for f in vignette.findings:
            phrase = clinical_phrase(f.name)
            assert phrase in vignette.text
            if not re.search(r"(al|ar|ic|ous|ary|cell|cells|fiber|phil|cyte|let|fluid) morphology$", phrase):
                assert not raw.search(phrase), (f.name, phrase)
    assert seen >= 50


def test_patient_rules_know_sex_and_age_of_findings(hpo):
    rules = PatientRules(hpo.ontology)
    by_name = {t.name: t.id for t in hpo.ontology.terms.values()}
    assert rules.fits(by_name["Male hypogonadism"], Patient(30, "female")) == "male-only finding in a female patient"
    assert "newborn" in rules.fits(by_name["Male infertility"], Patient(0.0, "male"))
    assert "past infancy" in rules.fits(by_name["Fetal megacystis"], Patient(31, "female"))
    assert rules.fits(by_name["Seizure"], Patient(0.0, "female")) is None
    assert rules.fits(by_name["Cryptorchidism"], Patient(0.0, "male")) is None
    infant = read_patient("A 10-month-old girl is evaluated for x.")
    assert infant.age_years == pytest.approx(10 / 12) and infant.sex == "female"
    assert read_patient("A newborn boy is examined.") == Patient(0.0, "male")
    assert read_patient("Which gene causes X?").age_years is None
    assert not age_fits_onset(5, ["Adult onset"]) and age_fits_onset(30, ["Childhood onset"])


def test_no_developmental_delay_in_a_newborn_and_no_46xy_female_finding_in_a_boy(hpo):
    rules = PatientRules(hpo.ontology)
    by_name = {t.name: t.id for t in hpo.ontology.terms.values()}
    newborn, three_months, eight_months = Patient(0.0, "male"), Patient(0.25, "female"), Patient(8 / 12, "male")
    for motor in ("Global developmental delay", "Delayed ability to sit", "Motor delay", "Persistent head lag"):
        assert "developmental delay in a newborn" in rules.fits(by_name[motor], newborn), motor
        assert rules.fits(by_name[motor], three_months) is not None, motor
        assert rules.fits(by_name[motor], eight_months) is None, motor
    speech = by_name["Delayed speech and language development"]
    assert "speech" in rules.fits(speech, eight_months) and rules.fits(speech, Patient(3.0, "male")) is None
    assert rules.fits(by_name["Hypotonia"], newborn) is None            # not a milestone
    for cognitive in ("Intellectual disability", "Intellectual disability, severe", "Specific learning disability"):
        assert "intellectual or learning disability" in rules.fits(by_name[cognitive], Patient(2.0, "male")), cognitive
        assert rules.fits(by_name[cognitive], Patient(7.0, "female")) is None, cognitive
    xy_female = by_name["Female external genitalia in individual with 46,XY karyotype"]
    assert "46,XY" in rules.fits(xy_female, Patient(3.0, "male"))
    # presents as a girl, whatever the annotation's sex column says about the karyotype
    assert rules.fits(xy_female, Patient(3.0, "female"), annotated_sex="male") is None
    for ambiguous in ("Ambiguous genitalia", "Ambiguous genitalia, male", "Ovotestis", "Sex reversal"):
        for sex in ("male", "female"):
            assert "unassigned" in rules.fits(by_name[ambiguous], Patient(0.0, sex)), (ambiguous, sex)
    assert clinical_phrase("Female external genitalia in individual with 46,XY karyotype") == \
        "female external genitalia with a 46,XY karyotype"


def test_every_vignette_states_an_age_and_fits_its_patient(builder):
    rng = random.Random(11)
    rows = rng.sample(builder.eligible["diagnosis"], 60)
    for row in rows:
        try:
            vignette = builder._vignette(row, random.Random(row))
        except Exception:
            continue
        patient = read_patient(vignette.text)
        assert patient.age_years is not None and patient.sex == vignette.sex, vignette.text
        for f in vignette.findings:
            assert builder.rules.fits(f.hpo_id, patient, f.sex) is None, (vignette.text, f.name)
        assert "/" not in vignette.text.split(".")[0] or "FEV1/FVC" in vignette.text


# -- distractors ----------------------------------------------------------------------------------
def test_family_name_strips_letter_and_number_subtypes():
    same_family = [("Fanconi anemia, complementation group D1", "Fanconi anemia, complementation group Q"),
                   ("Charcot-Marie-Tooth disease type 1C", "Charcot-Marie-Tooth disease, type 2A"),
                   ("Mucopolysaccharidosis type IIIA", "Mucopolysaccharidosis, type IVB"),
                   ("Niemann-Pick disease, type C", "Niemann-Pick disease, type A"),
                   ("Joubert syndrome 15", "Joubert syndrome 2"), ("Hemophilia A", "Hemophilia B"),
                   ("Brachydactyly, type A2", "Brachydactyly type B1"),
                   ("Xeroderma pigmentosum, complementation group A", "Xeroderma pigmentosum, group G")]
    for a, b in same_family:
        assert family_name(a) == family_name(b), (a, b)
    assert family_name("Fanconi anemia, complementation group D1") == "fanconi anemia"
    # words that are part of the name stay
    assert family_name("Fragile X syndrome") == "fragile x syndrome"
    assert family_name("Protein S deficiency") == "protein s deficiency"
    assert family_name("Vitamin D-dependent rickets, type 1A") == "vitamin d dependent rickets"


def test_letter_named_siblings_are_never_distractors_of_each_other(builder):
    rows = {p.name: i for i, p in enumerate(builder.profiles)}
    fanconi = sorted(i for name, i in rows.items() if name.lower().startswith("fanconi anemia, complementation group"))
    assert len(fanconi) >= 5
    assert not any(builder._distinct_from(j, [fanconi[0]]) for j in fanconi[1:])
    assert builder._distinct_from(rows["Marfan syndrome"], [fanconi[0]])


def test_inheritance_options_always_hold_the_four_main_modes_and_keys_are_balanced(builder):
    for mode in INHERITANCE_MODES:
        options = [mode, *builder.inheritance_options(mode)]
        assert set(CORE_MODES) <= set(options) and len(options) == len(set(options)) == 5
    rng = random.Random(0)
    pool = builder.eligible["inheritance"]
    keys = [main_inheritance(builder.profiles[builder.pick("inheritance", pool, rng)])[0] for _ in range(400)]
    shares = {m: keys.count(m) / len(keys) for m in set(keys)}
    assert len(shares) >= 4 and max(shares.values()) < 0.35


def test_easy_distractors_are_still_neighbours_of_the_key(builder):
    built = 0
    for row in builder.eligible["diagnosis"][::97][:30]:
        try:
            question = builder.diagnosis(row, "easy", random.Random(row))
        except Exception:
            continue
        built += 1
        assert len(question.meta["distractor_reasons"]) == 4
        for other in question.meta["distractor_ids"]:
            assert builder.neighbour_reason(row, builder.row[other]) is not None
    assert built >= 10


# -- the audit, on planted bad questions ----------------------------------------------------------
def _record(rid, qtype, stem, options, gold=0, **meta) -> QuestionRecord:
    return QuestionRecord(id=rid, question=stem, options=options, gold="ABCDE"[gold], rare=True,
                          question_type=qtype, source="planted", meta=meta)


def test_audit_flags_each_planted_defect(auditor, hpo):
    merged = merged_knowledge(hpo)
    hpp = merged.profile_of("ORPHA:681")          # hypokalemic periodic paralysis: NOT myotonia vs present
    gene_dist = ["SCN4A", "KCNJ2", "CLCN1", "RYR1"]
    planted = [
        _record("not-contested", "not_expected", "Which of the following findings is NOT a feature of "
                "Hypokalemic periodic paralysis?", ["Myotonia", "Hypokalemia", "Muscle weakness",
                                                    "Paralysis", "Areflexia"], disease_id="ORPHA:681"),
        _record("gene-wrong", "gene", "Hypokalemic periodic paralysis is caused by variants in which gene?",
                ["DMD", *gene_dist[1:], "TTN"], disease_id="ORPHA:681"),
        _record("gene-twice", "gene", "Hypokalemic periodic paralysis is caused by variants in which gene?",
                ["CACNA1S", *gene_dist], disease_id="ORPHA:681"),
        _record("leaky", "diagnosis", "A 25-year-old man presents with episodes of hypokalemic periodic "
                "paralysis and muscle weakness. Which of the following is the most likely diagnosis?",
                ["Hypokalemic periodic paralysis", "Myasthenia gravis", "Andersen-Tawil syndrome",
                 "Thyrotoxic periodic paralysis", "Paramyotonia congenita"], disease_id="ORPHA:681"),
        _record("no-age", "diagnosis", "A man presents with muscle weakness and hypokalemia. Which of the "
                "following is the most likely diagnosis?",
                ["Hypokalemic periodic paralysis", "Gitelman syndrome", "Bartter syndrome",
                 "Liddle syndrome", "Paramyotonia congenita"], disease_id="ORPHA:681"),
        _record("female-male", "diagnosis", "A 30-year-old woman presents with male hypogonadism and muscle "
                "weakness. Which of the following is the most likely diagnosis?",
                ["Hypokalemic periodic paralysis", "Kennedy disease", "Gitelman syndrome",
                 "Liddle syndrome", "Paramyotonia congenita"], disease_id="ORPHA:681"),
    ]
    assert hpp is not None and "CACNA1S" in hpp.genes
    verdicts = {r.id: auditor.audit(r) for r in planted}
    assert "contradicted" in verdicts["not-contested"].problems
    assert "contradicted" in verdicts["gene-wrong"].problems
    assert "ambiguous" in verdicts["gene-twice"].problems        # SCN4A is a gene of the disease too
    assert "leakage" in verdicts["leaky"].problems
    assert verdicts["no-age"].problems.get("incoherent") == "no age stated"
    assert "male-only" in verdicts["female-male"].problems["incoherent"]
    delayed_newborn = _record("newborn-delay", "diagnosis", "A newborn boy is examined because of hypotonia and "
                              "global developmental delay. Which of the following is the most likely diagnosis?",
                              ["Congenital muscular dystrophy, Fukuyama type", "Walker-Warburg syndrome",
                               "Muscle-eye-brain disease", "Congenital myotonic dystrophy", "Prader-Willi syndrome"],
                              disease_id="ORPHA:272")
    xy_boy = _record("xy-boy", "diagnosis", "A 3-year-old boy is evaluated for female external genitalia with a "
                     "46,XY karyotype and adrenal insufficiency. Which of the following is the most likely diagnosis?",
                     ["Congenital adrenal hyperplasia due to 17-alpha-hydroxylase deficiency",
                      "Congenital adrenal hyperplasia due to 21-hydroxylase deficiency", "Addison disease",
                      "Adrenal hypoplasia congenita", "Smith-Lemli-Opitz syndrome"], disease_id="ORPHA:90793")
    xy_girl = _record("xy-girl", "diagnosis", xy_boy.question.replace("boy", "girl"), xy_boy.options,
                      disease_id="ORPHA:90793")
    assert "developmental delay in a newborn" in auditor.audit(delayed_newborn).problems["incoherent"]
    assert "46,XY" in auditor.audit(xy_boy).problems["incoherent"]
    assert "incoherent" not in auditor.audit(xy_girl).problems
    report = audit_records(planted, auditor)
    assert report["checkable"] == len(planted) and report["by_question_type"]["gene"]["contradicted_share"] == 0.5


def test_not_expected_options_without_an_ontology_term_are_unresolved_not_passed(auditor):
    record = _record("unmapped", "not_expected", "Which of the following findings is NOT a feature of "
                     "Hypokalemic periodic paralysis?", ["Quuxoid facies", "Hypokalemia", "Muscle weakness",
                                                         "Zorblat sign", "Paralysis"], disease_id="ORPHA:681")
    verdict = auditor.audit(record)
    assert verdict.checkable and verdict.unresolved == ["Quuxoid facies", "Zorblat sign"]
    assert verdict.to_dict()["unresolved"] == ["Quuxoid facies", "Zorblat sign"]
    row = audit_records([record], auditor)
    assert row["by_question_type"]["not_expected"]["unresolved_options"] == 2
    assert row["overall"]["unresolved_questions"] == 1 and row["examples"]["unresolved"][0]["id"] == "unmapped"


def test_audit_finds_a_diagnosis_distractor_that_covers_the_case_as_well(builder, auditor):
    # build a real question, then swap one distractor for a disease that covers every finding
    for row in builder.eligible["diagnosis"][::53]:
        try:
            question = builder.diagnosis(row, "hard", random.Random(row))
        except Exception:
            continue
        findings = [k for k in question.knowledge_ids if k.startswith("HP:")]
        rivals = [r for r in builder.coverage.covering(findings, row, builder.margin) if builder._distinct_from(r, [row])]
        if not rivals:
            continue
        from medssr_nemo.synthesis.kg_questions import display_name

        good = QuestionRecord(id="good", question=question.stem, options=[question.key, *question.distractors],
                              gold="A", rare=True, question_type="diagnosis", knowledge_ids=question.knowledge_ids,
                              meta={"disease_id": builder.profiles[row].id})
        assert "ambiguous" not in auditor.audit(good).problems
        bad = QuestionRecord(id="bad", question=question.stem,
                             options=[question.key, display_name(builder.profiles[rivals[0]]), *question.distractors[1:]],
                             gold="A", rare=True, question_type="diagnosis", knowledge_ids=question.knowledge_ids,
                             meta={"disease_id": builder.profiles[row].id})
        assert "ambiguous" in auditor.audit(bad).problems
        return
    pytest.fail("no diagnosis question with a covering rival found")


def test_synth_audit_command_reports_per_type_shares(tmp_path, monkeypatch, capsys):
    from medssr_nemo.cli.synth import main

    path = tmp_path / "set.jsonl"
    rows = [_record("n1", "not_expected", "Which of the following findings is NOT a feature of Hypokalemic "
                    "periodic paralysis?", ["Myotonia", "Hypokalemia", "Muscle weakness", "Paralysis", "Areflexia"],
                    disease_id="ORPHA:681"),
            QuestionRecord(id="s1", question="Which vitamin prevents scurvy?", options=["C", "D", "K", "A"],
                           gold="A", question_type="seed", meta={"origin": "seed"})]
    path.write_text("".join(json.dumps(r.to_dict()) + "\n" for r in rows))
    assert main(["audit", str(path), "--out", str(tmp_path / "r.json")]) == 0
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["by_question_type"]["not_expected"]["contradicted_share"] == 1.0
    assert report["by_question_type"]["seed"]["checkable"] == 0 and report["mix"]["rare_share"] == 0.5
    assert "not_expected" in capsys.readouterr().out


# -- non-rare slots: the stage-1 seed reserve is disjoint from the stage-2 pool -------------------
def test_stage1_seed_reserve_is_disjoint_from_the_stage2_pool(tmp_path):
    from medssr_nemo.cli.data import main as data_main
    from medssr_nemo.data.seed_split import in_stage1_reserve, reserve_position
    from medssr_nemo.records import read_records
    from medssr_nemo.synthesis.seeds import load_seed_pool

    assert reserve_position("medmcqa-1") == reserve_position("medmcqa-1")
    share = sum(in_stage1_reserve(f"x-{i}", 0.3) for i in range(5000)) / 5000
    assert abs(share - 0.3) < 0.03 and not in_stage1_reserve("x-1", 0.0)
    assert data_main(["real", f"output_dir={tmp_path}", "data.pools=[mmlu]", "data.stage1_seed_share=0.5"]) == 0
    stage2 = {r.id for r in read_records(tmp_path / "real.jsonl")}
    seeds, summary = load_seed_pool(["mmlu"], reserve_share=0.5)
    whole, _ = load_seed_pool(["mmlu"])
    assert summary["disjoint_from_stage2_pool"] and seeds
    assert not stage2 & {r.id for r in seeds}
    assert stage2 | {r.id for r in seeds} == {r.id for r in whole}
    card = json.loads((tmp_path / "real.card.json").read_text())
    assert card["reserved_for_stage1_seeds"]["per_pool"]["mmlu"] == len(seeds)


def test_the_builder_refuses_a_question_whose_stem_names_its_key(builder, monkeypatch):
    from medssr_nemo.synthesis.kg_questions import BuiltQuestion, Unbuildable

    row = builder.eligible["diagnosis"][0]
    name = builder.profiles[row].name
    leaky = BuiltQuestion(stem=f"A 30-year-old man with known {name} presents. What is the diagnosis?",
                          key=name, distractors=["a", "b", "c", "d"], knowledge_ids=[])
    monkeypatch.setattr(builder, "diagnosis", lambda *args: leaky)
    with pytest.raises(Unbuildable, match="leakage"):
        builder.build("diagnosis", "easy", row, random.Random(0))


def test_audit_flags_a_not_expected_distractor_that_is_absent_too(auditor, hpo):
    merged = merged_knowledge(hpo)
    profile = merged.profile_of("ORPHA:681")
    present = [option_phrase(p.name) for p in profile.phenotypes][:3]
    absent_key = "Cleft palate"
    question = _record("two-absent", "not_expected", "Which of the following findings is NOT a feature of "
                       "Hypokalemic periodic paralysis?", [absent_key, *present, "Polydactyly"], disease_id="ORPHA:681")
    verdict = auditor.audit(question)
    assert "Polydactyly" in verdict.problems["ambiguous"] and "contradicted" not in verdict.problems
    fixed = _record("one-absent", "not_expected", question.question, [absent_key, *present],
                    disease_id="ORPHA:681")
    assert "ambiguous" not in auditor.audit(fixed).problems
