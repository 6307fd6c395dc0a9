"""A snippet corpus in the MedRAG / MedCorp layout, searched with BM25.

Layout: JSONL files whose rows are ``{"id": ..., "title": ..., "content": ...}`` (MedCorp's
``contents`` field, title + content, is accepted when ``content`` is absent). ``path`` is one such
file or a directory whose ``*.jsonl`` files are read in name order (MedRAG ships ``chunk/*.jsonl``).
Users bring PubMed, StatPearls or textbook snippets this way; a malformed row is dropped and
counted, never a crash. The BM25 index is saved in the cache directory under the files' sha256.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from medssr_nemo.artifacts import atomic_directory
from medssr_nemo.jsonl import iter_json_lines
from medssr_nemo.knowledge.bm25 import BM25Index
from medssr_nemo.knowledge.interfaces import KnowledgeSource, LoadReport, Passage
from medssr_nemo.models.cache import cache_root


def corpus_files(path: str | os.PathLike) -> list[Path]:
    path = Path(path)
    if path.is_dir():
        files = sorted(path.glob("*.jsonl"))
        if not files:
            raise FileNotFoundError(f"corpus directory {path} holds no *.jsonl files")
        return files
    if not path.exists():
        raise FileNotFoundError(f"corpus file not found: {path} (expected JSONL rows {{id, title, content}})")
    return [path]


def read_corpus(files: list[Path], report: LoadReport) -> list[tuple[str, str, str]]:
    passages: list[tuple[str, str, str]] = []
    seen: set[str] = set()
    for path in files:
        for lineno, row, err in iter_json_lines(path):
            where = f"{path.name}:{lineno}"
            if err is not None:
                report.drop("corpus: not valid JSON", f"{where}: {err.msg}")
                continue
            if not isinstance(row, dict):
                report.drop("corpus: row is not a JSON object", where)
                continue
            content = row.get("content", row.get("contents"))
            if row.get("id") in (None, "") or not isinstance(content, str) or not content.strip():
                report.drop("corpus: row lacks a non-empty 'id' or 'content'", where)
                continue
            passage_id = str(row["id"])
            if passage_id in seen:
                report.drop("corpus: duplicate id", f"{where}: {passage_id}")
                continue
            seen.add(passage_id)
            passages.append((passage_id, str(row.get("title") or ""), content.strip()))
    report.counts["passages"] = len(passages)
    return passages


class CorpusKnowledge(KnowledgeSource):
    """Free-text knowledge: no disease profiles, BM25 ``retrieve`` over the snippets."""

    name = "corpus"

    def __init__(self, path: str | os.PathLike, cache: bool = True) -> None:
        self.files = corpus_files(path)
        self.report = LoadReport()
        for file in self.files:
            with open(file, "rb") as handle:
                self.report.files[file.name] = hashlib.file_digest(handle, "sha256").hexdigest()
        passages = read_corpus(self.files, self.report)
        if not passages:
            raise ValueError(f"corpus {path} has no usable rows; dropped: {self.report.dropped}")
        self.index = BM25Index(passages, retriever=self._cached_retriever(passages) if cache else None)
        if cache:
            self._store(self.index)

    def _cache_dir(self) -> Path:
        key = hashlib.sha256(json.dumps(sorted(self.report.files.items())).encode()).hexdigest()[:24]
        return cache_root() / "knowledge" / f"bm25-{key}"

    def _cached_retriever(self, passages: list) -> Any:
        directory = self._cache_dir()
        if (directory / "done").exists():
            try:
                return BM25Index.load_retriever(directory)
            except Exception:  # an unreadable cache is rebuilt, never fatal
                return None
        return None

    def _store(self, index: BM25Index) -> None:
        directory = self._cache_dir()
        if (directory / "done").exists():
            return
        with atomic_directory(directory) as tmp:
            index.save(tmp)
            (tmp / "done").write_text("ok\n")

    def retrieve(self, query: str, k: int = 3) -> list[Passage]:
        return self.index.search(query, k)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, **self.report.to_dict()}
