"""``llm``: a generator model rewrites seed questions, injecting rare-disease knowledge when
rho < alpha (``synthesis.synthesizer=llm``; the generator is set under ``synthesis.generator``).

``synthesis.generator.kind=http``: any OpenAI-compatible endpoint (``base_url``, ``model``, the
API key read from the environment variable ``api_key_env``). ``kind=rollout_engine``: one of our
rollout engines (``engine``, default ``inprocess``) on ``generator.model`` (default ``model.path``).
"""

from __future__ import annotations

from typing import Any, Sequence

from medssr_nemo.registry import register


def build_generator(cfg: Any) -> Any:
    from medssr_nemo.synthesis.generators import EngineGenerator, HTTPChatGenerator

    gen = cfg.synthesis.generator
    if gen.kind == "http":
        return HTTPChatGenerator.from_config(gen)
    from medssr_nemo.rollout.for_checkpoint import engine_for_checkpoint

    engine, tokenizer = engine_for_checkpoint(cfg.rollout, gen.engine, gen.model or cfg.model.path, cfg.model.dtype)
    return EngineGenerator(engine, tokenizer, gen.temperature, gen.top_p, gen.max_new_tokens, gen.batch_size)


@register("synthesizer", "llm")
def build_llm_synthesizer(cfg: Any, *, knowledge: Any, seeds: Sequence[Any] = (), generator: Any = None,
                          blind_solver: Any = None, **_: Any) -> Any:
    from medssr_nemo.knowledge.corpus import CorpusKnowledge
    from medssr_nemo.synthesis.llm import LLMSynthesizer

    corpus = CorpusKnowledge(cfg.synthesis.corpus) if cfg.synthesis.corpus else None
    generator = generator or build_generator(cfg)
    blind = None
    if cfg.synthesis.blind_solve:
        blind = blind_solver or build_blind_solver(cfg, generator)
    return LLMSynthesizer(generator, knowledge, seeds, seed=cfg.synthesis.seed,
                          num_options=cfg.synthesis.num_options, corpus=corpus, blind_solver=blind,
                          margin=cfg.synthesis.distinct_margin)


def build_blind_solver(cfg: Any, generator: Any) -> Any:
    """The second model for ``synthesis.blind_solve``: the same endpoint under
    ``blind_solver_model`` (http), or the generator itself (rollout_engine, or no model named)."""
    from medssr_nemo.synthesis.generators import HTTPChatGenerator

    gen = cfg.synthesis.generator
    if gen.kind == "http" and cfg.synthesis.blind_solver_model:
        solver = HTTPChatGenerator.from_config(gen)
        solver.model, solver.temperature = cfg.synthesis.blind_solver_model, 0.0
        return solver
    return generator
