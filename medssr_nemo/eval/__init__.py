"""Evaluation on the MedSSR benchmark suite."""
