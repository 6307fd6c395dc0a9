"""Built-in benchmarks (kind ``benchmark``): the MedSSR paper's evaluation suite."""
