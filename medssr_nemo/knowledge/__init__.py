"""Knowledge sources the synthesizers draw from: HPO disease profiles and snippet corpora."""

from medssr_nemo.knowledge.interfaces import DiseaseProfile, KnowledgeSource, LoadReport, Passage, PhenotypeAnnotation
from medssr_nemo.knowledge.names import DiseaseNameIndex, measure_rare_ratio

__all__ = ["DiseaseNameIndex", "DiseaseProfile", "KnowledgeSource", "LoadReport", "Passage",
           "PhenotypeAnnotation", "measure_rare_ratio"]
