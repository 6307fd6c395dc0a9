"""Disease profiles as plain text: what a generator model or a BM25 index reads."""

from __future__ import annotations

from medssr_nemo.knowledge.interfaces import DiseaseProfile


def frequency_words(frequency: float | None) -> str:
    """HPO's own frequency bands, in words."""
    if frequency is None:
        return ""
    if frequency >= 0.999:
        return "always"
    if frequency >= 0.8:
        return "very frequent"
    if frequency >= 0.3:
        return "frequent"
    if frequency >= 0.05:
        return "occasional"
    return "very rare"


def profile_text(profile: DiseaseProfile, max_phenotypes: int = 20) -> str:
    """A compact fact sheet: name, ids, inheritance, onset, genes, phenotypes by frequency,
    excluded findings. Phenotypes are ordered most frequent first (unknown frequency last)."""
    lines = [f"Disease: {profile.name} ({', '.join(profile.source_ids or [profile.id])})"]
    if profile.synonyms:
        lines.append("Also known as: " + "; ".join(profile.synonyms[:5]))
    if profile.inheritance:
        lines.append("Inheritance: " + ", ".join(profile.inheritance))
    if profile.onset:
        lines.append("Onset: " + ", ".join(profile.onset))
    if profile.genes:
        lines.append("Genes: " + ", ".join(profile.genes[:10]))
    ranked = sorted(profile.phenotypes, key=lambda p: (-(p.frequency if p.frequency is not None else -1), p.name))
    if ranked:
        shown = [f"{p.name} ({frequency_words(p.frequency)})" if p.frequency is not None else p.name
                 for p in ranked[:max_phenotypes]]
        lines.append("Phenotypes: " + "; ".join(shown))
    if profile.excluded:
        lines.append("Not a feature: " + "; ".join(p.name for p in profile.excluded))
    return "\n".join(lines)
