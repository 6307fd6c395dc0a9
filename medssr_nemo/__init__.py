"""medssr_nemo: MedSSR-style medical reasoning training on NeMo / Megatron-core.

Knowledge-enhanced question synthesis, offline pseudo-labels by majority vote, two-stage GRPO
(self-supervised on synthetic data, then supervised on human-annotated data) and evaluation on
ten medical benchmarks. See README.md and docs/design.md for the map.
"""

__version__ = "0.1.0"
