"""Built-in reward sources: gold, pseudo_label, format, composite."""
