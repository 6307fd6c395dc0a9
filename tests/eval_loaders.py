"""A real evaluation policy loader that also watches the free-generation calls (the ones without
an ``allowed_token_ids`` restriction), for tests that check what each checkpoint was asked."""

from __future__ import annotations

from typing import Any, Callable

from medssr_nemo.eval.runner import default_policy_loader

# on_call(checkpoint reference, tokenizer, prompt token ids of one generate call)
OnCall = Callable[[str, Any, list], None]


def watching_loader(cfg: Any, on_call: OnCall) -> Callable[[str], tuple[Any, Any]]:
    load = default_policy_loader(cfg)

    def loader(reference: str) -> tuple[Any, Any]:
        engine, tokenizer = load(reference)
        original = engine.generate

        def generate(prompts, sampling, seeds):
            if sampling.allowed_token_ids is None:
                on_call(reference, tokenizer, prompts)
            return original(prompts, sampling, seeds)
        engine.generate = generate
        return engine, tokenizer
    return loader
