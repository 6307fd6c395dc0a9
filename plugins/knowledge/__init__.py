"""Knowledge sources (kind ``knowledge_source``)."""
