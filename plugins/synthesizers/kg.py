"""``kg``: knowledge-graph questions without a language model (``synthesis.synthesizer=kg``)."""

from __future__ import annotations

from typing import Any, Sequence

from medssr_nemo.registry import register


@register("synthesizer", "kg")
def build_kg_synthesizer(cfg: Any, *, knowledge: Any, seeds: Sequence[Any] = (), **_: Any) -> Any:
    from medssr_nemo.synthesis.kg import KGSynthesizer

    return KGSynthesizer(knowledge, seeds, seed=cfg.synthesis.seed, num_options=cfg.synthesis.num_options,
                         margin=cfg.synthesis.distinct_margin)
