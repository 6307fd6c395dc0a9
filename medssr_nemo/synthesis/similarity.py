"""Phenotype similarity between diseases: the dial behind distractor difficulty.

Each disease is the set of its annotated phenotypes closed under is_a (a "Seizure" annotation also
counts as "Abnormality of the nervous system"), every term weighted by its information content
IC(t) = -log(share of diseases whose closed set holds t). Similarity is the IC-weighted Jaccard

    sim(a, b) = sum_{t in A & B} IC(t) / sum_{t in A | B} IC(t)

so sharing a rare, specific finding counts far more than sharing a generic branch. One query is a
sparse matrix-vector product over all diseases (milliseconds).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Sequence

import numpy as np

from medssr_nemo.knowledge.interfaces import DiseaseProfile
from medssr_nemo.knowledge.obo import PHENOTYPIC_ABNORMALITY, ROOT, Ontology


class PhenotypeSimilarity:
    def __init__(self, profiles: Sequence[DiseaseProfile], ontology: Ontology) -> None:
        from scipy import sparse

        self.ids = [p.id for p in profiles]
        self.row = {p.id: i for i, p in enumerate(profiles)}
        annotated = sorted({a.hpo_id for p in profiles for a in p.phenotypes})
        annotated_col = {t: i for i, t in enumerate(annotated)}
        skip = {ROOT, PHENOTYPIC_ABNORMALITY}
        closed_terms = sorted({a for t in annotated for a in ontology.ancestors(t)} - skip)
        self.col = {t: i for i, t in enumerate(closed_terms)}
        # A: disease x annotated term;  M: annotated term x closed term (its ancestors)
        a_rows = [i for i, p in enumerate(profiles) for _ in p.phenotypes]
        a_cols = [annotated_col[a.hpo_id] for p in profiles for a in p.phenotypes]
        a = sparse.csr_matrix((np.ones(len(a_rows), np.float32), (a_rows, a_cols)),
                              shape=(len(profiles), len(annotated)))
        m_rows, m_cols = [], []
        for t in annotated:
            for anc in ontology.ancestors(t):
                if anc not in skip:
                    m_rows.append(annotated_col[t])
                    m_cols.append(self.col[anc])
        m = sparse.csr_matrix((np.ones(len(m_rows), np.float32), (m_rows, m_cols)),
                              shape=(len(annotated), len(closed_terms)))
        closed = (a @ m).tocsr()
        closed.data[:] = 1.0
        self.closed = closed
        counts = np.asarray(closed.sum(axis=0)).ravel()
        self.ic = np.where(counts > 0, -np.log(np.maximum(counts, 1) / max(len(profiles), 1)), 0.0)
        self.weighted = closed.multiply(self.ic[None, :]).tocsr()
        self.size = np.asarray(self.weighted.sum(axis=1)).ravel()
        self._ranked = lru_cache(maxsize=4096)(self._ranked_uncached)

    def similarities(self, disease_id: str) -> np.ndarray:
        """sim(disease, every disease), in profile order."""
        i = self.row[disease_id]
        query = self.weighted[i].toarray().ravel()
        inter = self.closed @ query
        union = self.size[i] + self.size - inter
        return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)

    def _ranked_uncached(self, disease_id: str) -> tuple[np.ndarray, np.ndarray]:
        sims = self.similarities(disease_id)
        order = np.lexsort((np.arange(len(sims)), -sims))   # most similar first, ties by row
        return order, sims

    def ranked(self, disease_id: str) -> tuple[np.ndarray, np.ndarray]:
        """(row indices of every disease, most similar first, itself included;
        similarities in row order)."""
        return self._ranked(disease_id)

    def term_ic(self, hpo_id: str) -> float:
        col = self.col.get(hpo_id)
        return float(self.ic[col]) if col is not None else 0.0

    def covers(self, row: int, hpo_ids: Sequence[str]) -> bool:
        """True when disease ``row`` has every term of ``hpo_ids`` (directly or via a descendant)."""
        cols = [self.col[t] for t in hpo_ids if t in self.col]
        if not cols:
            return False
        start, end = self.closed.indptr[row], self.closed.indptr[row + 1]
        present = set(self.closed.indices[start:end].tolist())
        return all(c in present for c in cols)
