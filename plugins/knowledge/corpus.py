"""``corpus``: BM25 over a MedRAG/MedCorp-layout snippet corpus (``{id, title, content}`` JSONL).

Options (``synthesis.knowledge_options``): ``path`` (a JSONL file or a directory of them,
required), ``cache`` (keep the BM25 index in the cache directory, default true).
"""

from __future__ import annotations

from typing import Any, Mapping

from medssr_nemo.registry import register


@register("knowledge_source", "corpus")
def build_corpus_knowledge(options: Mapping[str, Any] | None = None) -> Any:
    from medssr_nemo.knowledge.corpus import CorpusKnowledge

    options = dict(options or {})
    unknown = sorted(set(options) - {"path", "cache"})
    if unknown:
        raise ValueError(f"synthesis.knowledge_options has unknown key(s) {unknown} for corpus; known: ['path', 'cache']")
    if not options.get("path"):
        raise ValueError("the corpus knowledge source needs synthesis.knowledge_options.path "
                         "(a MedRAG-layout JSONL file or directory)")
    cache = str(options.get("cache", True)).lower() not in ("false", "0", "no")
    return CorpusKnowledge(options["path"], cache=cache)
