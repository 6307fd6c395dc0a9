"""Does the knowledge base support exactly one option? An information-content coverage score.

``coverage(d, F)``: how well disease ``d`` explains findings ``F``, the best-match sum

    coverage(d, F) = sum_{f in F} max { IC(t) : t an ancestor of f (f included) that d has }

where "d has t" means t is annotated to d or lies above one of its annotations (the closed sets
of ``PhenotypeSimilarity``) and IC(t) = -log(share of diseases that have t). A disease annotated
with f itself earns IC(f); one annotated only with a broader term earns the broader term's IC;
one with nothing related earns 0. So "covers" weighs specific findings far above generic ones.

Rules built on it (one definition, used by the question builder and by the audit):

- diagnosis: distinct when every distractor's coverage is below the key's by at least
  ``margin`` nats (a factor e**margin in the share of diseases that would fit);
- gene / inheritance from a vignette: every disease whose coverage reaches the key's minus
  ``margin`` (the diseases that "cover the vignette") shares the key.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from medssr_nemo.synthesis.similarity import PhenotypeSimilarity

DEFAULT_MARGIN = 2.0    # nats


class CoverageIndex:
    def __init__(self, similarity: PhenotypeSimilarity, ancestors) -> None:
        self.similarity = similarity
        self.by_column = similarity.closed.tocsc()
        self.ancestors = ancestors
        self._columns: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def _finding(self, hpo_id: str) -> tuple[np.ndarray, np.ndarray]:
        """(closed-term columns of the finding's ancestors, their IC)."""
        if hpo_id not in self._columns:
            col = self.similarity.col
            cols = np.array(sorted(col[a] for a in self.ancestors(hpo_id) if a in col), dtype=np.int64)
            self._columns[hpo_id] = (cols, self.similarity.ic[cols] if len(cols) else np.zeros(0))
        return self._columns[hpo_id]

    def ideal(self, findings: Sequence[str]) -> float:
        """The coverage of a disease annotated with every finding: sum of IC(f)."""
        return float(sum(self.similarity.term_ic(f) for f in findings))

    def scores(self, findings: Sequence[str]) -> np.ndarray:
        """coverage(d, findings) for every disease row."""
        total = np.zeros(self.by_column.shape[0])
        for f in findings:
            cols, ic = self._finding(f)
            if not len(cols):
                continue
            sub = self.by_column[:, cols].multiply(ic[None, :]).tocsr()
            total += np.asarray(sub.max(axis=1).todense()).ravel()
        return total

    def score(self, row: int, findings: Sequence[str]) -> float:
        closed = self.similarity.closed
        present = set(closed.indices[closed.indptr[row]:closed.indptr[row + 1]].tolist())
        total = 0.0
        for f in findings:
            cols, ic = self._finding(f)
            best = [float(v) for c, v in zip(cols.tolist(), ic.tolist()) if c in present]
            total += max(best, default=0.0)
        return total

    def covering(self, findings: Sequence[str], key_row: int, margin: float = DEFAULT_MARGIN) -> list[int]:
        """Rows (the key's excluded) whose coverage reaches the key's minus ``margin``."""
        scores = self.scores(findings)
        floor = scores[key_row] - margin
        return [int(r) for r in np.flatnonzero(scores >= floor) if r != key_row]

