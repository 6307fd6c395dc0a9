"""Question synthesizers (kind ``synthesizer``)."""
