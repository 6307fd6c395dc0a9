"""Question synthesis: plan a target mix, generate (``kg`` from knowledge-base facts, ``llm`` with a
generator model), filter (validity, decontamination, near duplicates), write resumably.

Entry point: ``medssr_nemo.synthesis.from_config.run_synthesis(cfg)`` (what ``medssr synth`` calls).
"""
