"""Prints, as JSON, every per-sample seed and sampled token the run derives from (seed, step,
question, sample), laid out as ``order`` says; run in a fresh process by
test_seeds_across_processes.py (not a test module)."""

from __future__ import annotations

import json
import sys

import torch


def probe(order: str) -> dict:
    from medssr_nemo.eval.protocol import sample_seed as eval_seed
    from medssr_nemo.grpo.data import TrainingQuestion
    from medssr_nemo.grpo.rollouts import generate_groups
    from medssr_nemo.models import make_tiny_model
    from medssr_nemo.prompts import encode_prompt
    from medssr_nemo.records import QuestionRecord
    from medssr_nemo.rollout.inprocess import InProcessEngine
    from medssr_nemo.rollout.interfaces import SamplingParams
    from medssr_nemo.rollout.sampling import row_uniforms
    from medssr_nemo.synthesis.llm import sample_seed as synthesis_seed

    torch.set_num_threads(1)
    model, tokenizer = make_tiny_model("llama", seed=0)
    records = [QuestionRecord(id=f"q{i}", question=f"Question {i} about {'x' * i}?", options=["a", "b", "c"])
               for i in range(3)]
    if order == "reversed":
        records = records[::-1]
    questions = [TrainingQuestion(r, "", encode_prompt(r, tokenizer, "base")) for r in records]
    engine = InProcessEngine(model, tokenizer, max_batch_size=2 if order == "reversed" else 64)
    seen: list[int] = []
    generate = engine.generate

    def recording(prompts, sampling, seeds):
        seen.extend(seeds)
        return generate(prompts, sampling, seeds)

    engine.generate = recording
    groups = generate_groups(engine, questions, 3, SamplingParams(max_new_tokens=4), run_seed=5, step=2,
                             batch_size=4 if order == "reversed" else 9)
    by_question = {r.id: {"seeds": seen[i * 3:(i + 1) * 3], "tokens": [c.token_ids for c in g]}
                   for i, (r, g) in enumerate(zip(records, groups))}
    return {
        "grpo": by_question,
        "eval": {q: [eval_seed(0, q, k) for k in range(3)] for q in ("q0", "q1")},
        "synthesis": [synthesis_seed(3, slot, 1) for slot in range(3)],
        "uniforms": row_uniforms([11, 2**40 + 3], 3).tolist(),
    }


if __name__ == "__main__":
    print(json.dumps(probe(sys.argv[1])))
