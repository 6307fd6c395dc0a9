"""BM25 retrieval over (id, title, text) passages, with ``bm25s`` doing the indexing and scoring."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from medssr_nemo.knowledge.interfaces import Passage


def _tokenize(texts: list[str]) -> list[list[str]]:
    import bm25s

    return bm25s.tokenize(texts, stopwords="en", return_ids=False, show_progress=False)


class BM25Index:
    """An in-memory BM25 index; ``save``/``load`` keep the scored index (not the texts' order,
    which the caller persists with the passages)."""

    def __init__(self, passages: Sequence[tuple[str, str, str]], retriever=None) -> None:
        import bm25s

        self.ids = [p[0] for p in passages]
        self.titles = [p[1] for p in passages]
        self.texts = [p[2] for p in passages]
        if retriever is None:
            retriever = bm25s.BM25()
            retriever.index(_tokenize([f"{t}\n{x}" for t, x in zip(self.titles, self.texts)]),
                            show_progress=False)
        self.retriever = retriever

    def __len__(self) -> int:
        return len(self.ids)

    def search(self, query: str, k: int = 3) -> list[Passage]:
        """The best ``k`` passages with a positive score, best first (ties: lower index first)."""
        if not self.ids or k < 1 or not query.strip():
            return []
        results = self.retriever.retrieve(_tokenize([query]), k=min(k, len(self.ids)), show_progress=False)
        found = []
        for doc, score in zip(results.documents[0], results.scores[0]):
            if float(score) > 0:
                i = int(doc)
                found.append(Passage(self.ids[i], self.titles[i], self.texts[i], float(score)))
        return found

    def save(self, directory: str | os.PathLike) -> None:
        self.retriever.save(str(directory))

    @staticmethod
    def load_retriever(directory: str | os.PathLike):
        import bm25s

        return bm25s.BM25.load(str(Path(directory)))
