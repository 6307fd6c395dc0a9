"""The corpus knowledge source: MedRAG-layout snippets searched with BM25 (bm25s)."""

from __future__ import annotations

import json

import pytest

from medssr_nemo import registry
from medssr_nemo.knowledge.corpus import CorpusKnowledge

SNIPPETS = [
    {"id": "statpearls-1", "title": "Wilson Disease",
     "content": "Wilson disease is an autosomal recessive disorder of copper transport caused by ATP7B variants; "
                "copper accumulates in the liver and brain and Kayser-Fleischer rings appear."},
    {"id": "statpearls-2", "title": "Marfan Syndrome",
     "content": "Marfan syndrome is caused by FBN1 variants: tall stature, arachnodactyly, lens dislocation and "
                "aortic root dilation."},
    {"id": "statpearls-3", "title": "Cystic Fibrosis",
     "content": "Cystic fibrosis results from CFTR variants and causes thick mucus in the lungs and pancreas."},
    {"id": "pubmed-4", "title": "Gaucher disease",
     "content": "Gaucher disease is a lysosomal storage disorder with splenomegaly and bone crises (GBA1)."},
]


def _write_corpus(path, rows, extra_lines=()):
    with open(path, "w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(row) + "\n")
        for line in extra_lines:
            out.write(line + "\n")
    return path


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDSSR_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_bm25_finds_the_passage_about_the_query(tmp_path, cache):
    corpus = CorpusKnowledge(_write_corpus(tmp_path / "c.jsonl", SNIPPETS))
    hits = corpus.retrieve("copper deposits in liver, Kayser-Fleischer rings", k=2)
    assert hits[0].id == "statpearls-1" and hits[0].title == "Wilson Disease"
    assert hits[0].score > (hits[1].score if len(hits) > 1 else 0.0)
    assert [p.id for p in corpus.retrieve("FBN1 aortic root", k=1)] == ["statpearls-2"]
    assert corpus.retrieve("zebra unicorn", k=3) == []       # nothing shares a word: nothing returned


def test_malformed_rows_are_dropped_and_counted(tmp_path, cache):
    path = _write_corpus(tmp_path / "c.jsonl", SNIPPETS, extra_lines=[
        "{not json", '["a list"]', json.dumps({"id": "x", "title": "no content"}),
        json.dumps({"id": "statpearls-1", "title": "dup", "content": "duplicate id"}),
        json.dumps({"id": "medcorp-9", "contents": "MedCorp layout: Fabry disease GLA alpha-galactosidase"})])
    corpus = CorpusKnowledge(path)
    assert corpus.report.counts["passages"] == 5
    assert corpus.report.dropped == {"corpus: not valid JSON": 1, "corpus: row is not a JSON object": 1,
                                     "corpus: row lacks a non-empty 'id' or 'content'": 1,
                                     "corpus: duplicate id": 1}
    assert corpus.report.examples["corpus: not valid JSON"][0].startswith("c.jsonl:5")
    assert corpus.retrieve("Fabry GLA", k=1)[0].id == "medcorp-9"


def test_directory_of_chunks_and_index_cache(tmp_path, cache):
    chunks = tmp_path / "chunk"
    chunks.mkdir()
    _write_corpus(chunks / "a.jsonl", SNIPPETS[:2])
    _write_corpus(chunks / "b.jsonl", SNIPPETS[2:])
    first = registry.get("knowledge_source", "corpus")({"path": str(chunks)})
    assert len(list((cache / "knowledge").glob("bm25-*/done"))) == 1
    second = CorpusKnowledge(chunks)        # loads the saved index
    query = "lysosomal storage splenomegaly"
    assert [p.id for p in second.retrieve(query, 4)] == [p.id for p in first.retrieve(query, 4)]
    assert second.retrieve(query, 1)[0].id == "pubmed-4"


def test_corpus_errors_name_the_problem(tmp_path, cache):
    with pytest.raises(FileNotFoundError, match="corpus file not found"):
        CorpusKnowledge(tmp_path / "missing.jsonl")
    with pytest.raises(ValueError, match="needs synthesis.knowledge_options.path"):
        registry.get("knowledge_source", "corpus")({})
    empty = _write_corpus(tmp_path / "empty.jsonl", [], extra_lines=["{bad"])
    with pytest.raises(ValueError, match="no usable rows"):
        CorpusKnowledge(empty)
