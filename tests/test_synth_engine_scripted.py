"""The llm synthesizer backed by a rollout engine, with the model's output scripted: the engine
returns token ids of a known reply written from the prompt it was given, so the whole path
(chat template -> engine -> decoded text -> strict parser -> record) is exercised with outputs
that parse, and each record can be traced back to the prompt of its own slot.

The scripted part is the model only: a ``RolloutEngine`` whose completions are the tokenized
reply (the engine contract: token ids, decoded text, one logprob per token, finish reason)."""

from __future__ import annotations

import re

import pytest

from medssr_nemo.config import load_config
from medssr_nemo.rollout.interfaces import Completion, RolloutEngine
from medssr_nemo.synthesis.llm import sample_seed
from medssr_nemo.synthesis.llm_format import SYSTEM_PROMPT

LETTERS = "ABCDEFGHIJ"


class ScriptedModelEngine(RolloutEngine):
    """Replies to each prompt as a compliant generator would, marked with the generation seed: a
    rare slot's grounded prompt gets its own options back verbatim (rotated so the key sits at
    letter ``seed % n``) with its key; a seed rewrite gets five statements keyed ``seed % 5``."""

    def __init__(self, tokenizer) -> None:
        self.tokenizer = tokenizer
        self.seen: list[tuple[str, int]] = []
        self.grounded: dict[int, tuple[list[str], str]] = {}   # seed -> (options given, key given)

    def reply(self, prompt: str, seed: int) -> str:
        stem = f"Which option (seed {seed}) fits the case described in this exam question?"
        if "Options (use exactly these texts" in prompt:
            block = prompt.split("Options (use exactly these texts, in any order):\n", 1)[1].split("\n\n", 1)[0]
            options = [line[2:].strip() for line in block.splitlines() if line.startswith("- ")]
            key = re.search(r"The correct answer is: (.+)", prompt).group(1).strip()
            self.grounded[seed] = (options, key)
            others = [o for o in options if o != key]
            at = seed % len(options)
            ordered = others[:at] + [key] + others[at:]
            return (f"Question: {stem}\n" + "\n".join(f"{LETTERS[i]}. {o}" for i, o in enumerate(ordered))
                    + f"\nAnswer: {LETTERS[at]}")
        seed_stem = prompt.split("Seed question:\n", 1)[1].split("\n", 1)[0] if "Seed question:\n" in prompt else "?"
        return (f"Question: Regarding the seed '{seed_stem[:40]}', which statement (seed {seed}) is correct?\n"
                + "\n".join(f"{letter}. Statement {letter} {seed}" for letter in LETTERS[:5])
                + f"\nAnswer: {LETTERS[seed % 5]}\nExplanation: scripted.")

    def generate(self, prompt_token_ids, sampling, seeds):
        out = []
        for ids, seed in zip(prompt_token_ids, seeds):
            prompt = self.tokenizer.decode(list(ids), skip_special_tokens=True)
            self.seen.append((prompt, int(seed)))
            tokens = self.tokenizer(self.reply(prompt, int(seed)), add_special_tokens=False)["input_ids"]
            tokens = tokens[:sampling.max_new_tokens]
            out.append(Completion(tokens, self.tokenizer.decode(tokens, skip_special_tokens=True),
                                  [0.0] * len(tokens), "stop", 0, list(ids)))
        return out

    def update_weights(self, named_tensors):
        raise NotImplementedError("a scripted model has no weights")

    @property
    def weight_version(self) -> int:
        return 0


@pytest.fixture(scope="module")
def hpo():
    from medssr_nemo.knowledge.hpo import HPOKnowledge

    return HPOKnowledge.load()


def test_engine_backed_synthesis_parses_scripted_replies_into_their_own_slots(tmp_path, hpo, shared_data, tiny_llama):
    """Catches: replies attached to the wrong slot (a zip over reordered jobs), seeds not passed
    to the engine, the chat template not applied, or decoded text not reaching the parser.
    Planted by hand: ``EngineGenerator.generate`` handing out the replies of a batch reversed
    fails the per-slot checks below."""
    from medssr_nemo import registry
    from medssr_nemo.data.real import read_mmlu_dir
    from medssr_nemo.records import read_records
    from medssr_nemo.synthesis.generators import EngineGenerator
    from medssr_nemo.synthesis.from_config import run_synthesis

    _, tokenizer = tiny_llama
    engine = ScriptedModelEngine(tokenizer)
    seeds = read_mmlu_dir(shared_data / "train" / "mmlu_medical")[:10]
    cfg = load_config("base", [
        f"output_dir={tmp_path}", "synthesis.synthesizer=llm", "synthesis.alpha=0.5", "synthesis.seed=4",
        "synthesis.num_questions=6", "synthesis.max_attempts=1", "synthesis.show_progress=false",
        "synthesis.filters.decontaminate=false", "synthesis.generator.kind=rollout_engine"])
    generator = EngineGenerator(engine, tokenizer, max_new_tokens=400, batch_size=4)
    synthesizer = registry.get("synthesizer", "llm")(cfg, knowledge=hpo, seeds=seeds, generator=generator)
    out = run_synthesis(cfg, knowledge=hpo, seeds=seeds, synthesizer=synthesizer)
    records = read_records(out.records_path)
    assert len(records) == 6 and out.card["counts"]["given_up"] == 0, (out.card["counts"], out.card.get("filters"), out.card.get("generation_failures"))
    # the chat template rendered the conversation, generation prompt included
    assert all(p.startswith("system\n" + SYSTEM_PROMPT) and p.rstrip().endswith("assistant") for p, _ in engine.seen)
    expected_seeds = {sample_seed(4, slot, 0) % 2**31 for slot in range(6)}
    assert {s for _, s in engine.seen} == expected_seeds
    for record in records:
        slot = int(record.id.rsplit("-", 1)[1])
        seed = sample_seed(4, slot, 0) % 2**31
        assert f"(seed {seed})" in record.question               # this slot's own reply
        if record.rare:   # the knowledge base's options and key, as the slot's own prompt gave them
            options, key = engine.grounded[seed]
            assert sorted(record.options) == sorted(options) and record.gold == LETTERS[seed % len(options)]
            assert record.options[LETTERS.index(record.gold)] == key
        else:
            assert "the seed '" in record.question
            assert record.gold == LETTERS[seed % 5] and record.options[0] == f"Statement A {seed}"
    assert {r.rare for r in records} == {True, False}
