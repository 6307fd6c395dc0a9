"""The ``llm`` synthesizer: a generator model rewrites a sampled seed question into a new one.

Every slot draws a seed question (a seeded permutation of the decontaminated training pools, no
repeats while the pool lasts). When the slot is rare (rho < alpha) the prompt also carries
rare-disease knowledge and asks for a question built on it: with a knowledge source that has
disease profiles (``hpo``) a disease of the planned category is drawn and its fact sheet is given
(plus, with ``synthesis.corpus``, the best BM25 passages about it); with a plain corpus the
passages retrieved for the seed question are given. The generator's reply is parsed strictly
(``llm_format``); a failed request or an unreadable reply is a counted, explained drop and the
slot is retried with a new seed.
"""

from __future__ import annotations

import hashlib
import random
from typing import Any, Sequence

from medssr_nemo.knowledge.interfaces import KnowledgeSource
from medssr_nemo.knowledge.render import profile_text
from medssr_nemo.records import QuestionRecord, RecordError
from medssr_nemo.synthesis.generators import Generator
from medssr_nemo.synthesis.interfaces import Candidate, Synthesizer
from medssr_nemo.synthesis.llm_format import QUESTION_TYPE_TASKS, ParseError, build_prompt, parse_question
from medssr_nemo.synthesis.plan import Slot

DIFFICULTIES = ("easy", "medium", "hard")


def sample_seed(seed: int, slot: int, attempt: int) -> int:
    """A 31-bit generation seed from (run seed, slot, attempt), the same on every machine."""
    digest = hashlib.sha256(f"llm:{seed}:{slot}:{attempt}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


class LLMSynthesizer(Synthesizer):
    name = "llm"
    nonrare_dimensions = ("difficulty",)

    def __init__(self, generator: Generator, knowledge: KnowledgeSource, seeds: Sequence[QuestionRecord],
                 seed: int = 0, num_options: int = 5, corpus: KnowledgeSource | None = None,
                 passages_per_question: int = 3) -> None:
        if not seeds:
            raise ValueError("the llm synthesizer rewrites seed questions, but the seed pool is empty")
        self.generator = generator
        self.knowledge = knowledge
        self.corpus = corpus
        self.seeds = list(seeds)
        self.seed = seed
        self.num_options = num_options
        self.passages_per_question = passages_per_question
        self.profiles = [p for p in knowledge.profiles() if p.rare]
        self._by_category: dict[str | None, list[int]] = {None: list(range(len(self.profiles)))}
        for i, profile in enumerate(self.profiles):
            self._by_category.setdefault(profile.category, []).append(i)
        self._order = list(range(len(self.seeds)))
        random.Random(f"llm-seed-order:{seed}").shuffle(self._order)
        self._num_slots = 0

    def supported(self) -> dict[str, list[str]]:
        allowed = {"question_type": list(QUESTION_TYPE_TASKS), "difficulty": list(DIFFICULTIES)}
        if self.profiles:
            allowed["category"] = sorted(c for c in self._by_category if c)
        return allowed

    def prepare(self, plan: Sequence[Slot]) -> None:
        self._num_slots = len(plan)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "generator": self.generator.describe(), "seed_questions": len(self.seeds),
                "rare_profiles": len(self.profiles)}

    def _seed_record(self, slot: Slot, attempt: int) -> QuestionRecord:
        position = (slot.index + attempt * max(self._num_slots, 1)) % len(self.seeds)
        return self.seeds[self._order[position]]

    def _knowledge_for(self, slot: Slot, seed_record: QuestionRecord, rng: random.Random) -> tuple[str, list[str], Any]:
        """(knowledge text, knowledge ids, disease profile or None) for a rare slot."""
        if self.profiles:
            pool = self._by_category.get(slot.category, [])
            if not pool:
                raise ParseError("no eligible disease", f"no rare disease of category {slot.category!r}")
            profile = self.profiles[rng.choice(pool)]
            text, ids = profile_text(profile), list(profile.source_ids)
            if self.corpus is not None:
                for passage in self.corpus.retrieve(profile.name, self.passages_per_question):
                    text += f"\n\nFrom {passage.title or passage.id}: {passage.text}"
                    ids.append(passage.id)
            return text, ids, profile
        passages = self.knowledge.retrieve(seed_record.question, self.passages_per_question)
        if not passages:
            raise ParseError("no knowledge retrieved", seed_record.question[:80])
        return "\n\n".join(f"{p.title}: {p.text}" for p in passages), [p.id for p in passages], None

    def synthesize(self, slots: Sequence[Slot], attempt: int) -> list[Candidate]:
        results: dict[int, Candidate] = {}
        jobs = []   # (slot, seed record, knowledge ids, profile, conversation)
        for slot in slots:
            rng = random.Random(f"llm:{self.seed}:{slot.index}:{attempt}")
            seed_record = self._seed_record(slot, attempt)
            knowledge, ids, profile = None, [seed_record.id], None
            if slot.rare:
                try:
                    knowledge, extra, profile = self._knowledge_for(slot, seed_record, rng)
                except ParseError as err:
                    results[slot.index] = Candidate(slot.index, reason=err.reason, detail=err.detail)
                    continue
                ids += extra
            conversation = build_prompt(seed_record, self.num_options, slot.difficulty,
                                        slot.question_type if slot.rare else None, knowledge)
            jobs.append((slot, seed_record, ids, profile, conversation))
        outputs = self.generator.generate([j[4] for j in jobs],
                                          [sample_seed(self.seed, j[0].index, attempt) for j in jobs])
        for (slot, seed_record, ids, profile, _), output in zip(jobs, outputs):
            results[slot.index] = self._candidate(slot, seed_record, ids, profile, output)
        return [results[slot.index] for slot in slots]

    def _candidate(self, slot: Slot, seed_record: QuestionRecord, ids: list[str], profile: Any, output) -> Candidate:
        if output.text is None:
            return Candidate(slot.index, reason=f"generator: {output.error}", detail=output.detail)
        try:
            parsed = parse_question(output.text, self.num_options)
            record = QuestionRecord(
                id=f"llm-{self.seed}-{slot.index:06d}", question=parsed.stem, options=parsed.options,
                gold=parsed.answer, source="llm", knowledge_ids=ids, rare=slot.rare,
                category=profile.category if profile is not None else seed_record.category,
                question_type=slot.question_type if slot.rare else "rewrite", difficulty=slot.difficulty,
                meta={"origin": "generator", "seed_id": seed_record.id, "key_source": "generator",
                      **({"disease_id": profile.id, "disease": profile.name} if profile is not None else {})},
            )
        except ParseError as err:
            return Candidate(slot.index, reason=f"unparseable: {err.reason}", detail=err.detail or output.text[:200])
        except RecordError as err:
            return Candidate(slot.index, reason="unparseable: invalid record", detail=str(err)[:200])
        return Candidate(slot.index, record=record)
