"""The ``kg`` synthesizer: questions from knowledge-base facts, no language model involved.

Rare slots (rho < alpha) become knowledge-base questions (``kg_questions``) on an HPO disease of
the planned category, of the planned type and difficulty. Non-rare slots must still be real
questions, and without a model the only sound source of common medical knowledge is human-written
questions: each takes a seed question from the decontaminated training pools (MedMCQA dev and MMLU
medical dev/val by default), its options shuffled when their order carries no meaning. Seeds are
dealt from a seeded permutation of the pool, so no seed repeats while the pool lasts.
"""

from __future__ import annotations

import hashlib
import random
from typing import Any, Sequence

from medssr_nemo.knowledge.interfaces import KnowledgeSource
from medssr_nemo.knowledge.merge import merged_knowledge
from medssr_nemo.records import LETTERS, QuestionRecord
from medssr_nemo.synthesis.distinct import DEFAULT_MARGIN
from medssr_nemo.synthesis.interfaces import Candidate, Synthesizer
from medssr_nemo.synthesis.kg_questions import QUESTION_TYPES, KGQuestionBuilder, Unbuildable
from medssr_nemo.synthesis.plan import Slot
from medssr_nemo.synthesis.seeds import order_is_free

DIFFICULTIES = ("easy", "medium", "hard")
MAX_DISEASE_TRIES = 8


class KGSynthesizer(Synthesizer):
    name = "kg"

    def __init__(self, knowledge: KnowledgeSource, seeds: Sequence[QuestionRecord], seed: int = 0,
                 num_options: int = 5, builder: KGQuestionBuilder | None = None,
                 margin: float = DEFAULT_MARGIN) -> None:
        """``builder``: an existing question builder over the same knowledge (it holds the
        similarity index, the costly part) to share between synthesizers."""
        ontology = getattr(knowledge, "ontology", None)
        if not knowledge.profiles() or ontology is None:
            raise ValueError(f"the kg synthesizer needs a knowledge source with disease profiles and an "
                             f"ontology (e.g. 'hpo'); {getattr(knowledge, 'name', knowledge)!r} has none")
        self.knowledge = knowledge
        if builder is not None and builder.num_options != num_options:
            raise ValueError(f"the shared builder makes {builder.num_options}-option questions, not {num_options}")
        if builder is None:
            # one profile per disease (exact twins merged, NOT/present conflicts dropped), and only
            # rare diseases: an OMIM entry such as "Colorectal cancer" must not pass as rare knowledge
            merged = merged_knowledge(knowledge)
            rows = [i for i, p in enumerate(merged.profiles) if p.rare]
            builder = KGQuestionBuilder([merged.profiles[i] for i in rows], ontology, num_options, margin,
                                        [merged.contested[i] for i in rows])
        self.builder = builder
        self.seeds = list(seeds)
        self.seed = seed
        self.num_options = num_options
        self._seed_order = list(range(len(self.seeds)))
        random.Random(f"kg-seed-order:{seed}").shuffle(self._seed_order)
        self._num_common = 0

    def supported(self) -> dict[str, list[str]]:
        return {"question_type": list(QUESTION_TYPES), "difficulty": list(DIFFICULTIES),
                "category": self.builder.categories()}

    def prepare(self, plan: Sequence[Slot]) -> None:
        self._num_common = sum(1 for s in plan if not s.rare)
        if self._num_common and not self.seeds:
            raise ValueError("non-rare questions need seed questions, but the seed pool is empty")

    def describe(self) -> dict[str, Any]:
        merge = getattr(self.knowledge, "_merged_view", None)
        return {"name": self.name, "seed_questions": len(self.seeds), "distinct_margin_nats": self.builder.margin,
                "nonrare_questions": "verbatim seed copies (options reshuffled), from the seed pool the card's "
                                     "inputs.seeds describes",
                "eligible_diseases": {t: len(v) for t, v in self.builder.eligible.items()},
                **({"merge": merge.report.to_dict()} if merge is not None else {})}

    def synthesize(self, slots: Sequence[Slot], attempt: int) -> list[Candidate]:
        return [self._one(slot, attempt) for slot in slots]

    def _rng(self, slot: Slot, attempt: int) -> random.Random:
        return random.Random(f"kg:{self.seed}:{slot.index}:{attempt}")

    def _one(self, slot: Slot, attempt: int) -> Candidate:
        rng = self._rng(slot, attempt)
        return self._rare(slot, rng) if slot.rare else self._common(slot, attempt, rng)

    def _rare(self, slot: Slot, rng: random.Random) -> Candidate:
        qtype, difficulty = slot.question_type or "diagnosis", slot.difficulty or "medium"
        pool = self.builder.candidates(qtype, slot.category)
        if not pool:
            return Candidate(slot.index, reason="no eligible disease",
                             detail=f"no disease of category {slot.category!r} supports {qtype} questions")
        reasons = []
        for _ in range(MAX_DISEASE_TRIES):
            target = self.builder.pick(qtype, pool, rng)
            try:
                built = self.builder.build(qtype, difficulty, target, rng)
            except Unbuildable as err:
                reasons.append(str(err))
                continue
            return Candidate(slot.index, record=self._record(slot, target, built, rng))
        return Candidate(slot.index, reason="no buildable question",
                         detail=f"{qtype}/{difficulty}: " + "; ".join(sorted(set(reasons))))

    def _record(self, slot: Slot, target: int, built, rng: random.Random) -> QuestionRecord:
        profile = self.builder.profiles[target]
        options = [built.key, *built.distractors]
        rng.shuffle(options)
        return QuestionRecord(
            id=f"kg-{self.seed}-{slot.index:06d}", question=built.stem, options=options,
            gold=LETTERS[options.index(built.key)], source="kg", knowledge_ids=built.knowledge_ids,
            rare=True, category=profile.category, question_type=slot.question_type,
            difficulty=slot.difficulty,
            meta={"origin": "knowledge", "disease_id": profile.id, "disease": profile.name, **built.meta},
        )

    def _seed_position(self, branch_index: int, attempt: int) -> int:
        """First attempts deal the permutation in order; a retry (the first seed was filtered,
        e.g. as a near duplicate) draws from the spares past the planned ones, so it does not
        collide with another slot's first seed while spares last."""
        n = len(self.seeds)
        spares = n - self._num_common
        if attempt == 0 or spares <= 0:
            return (branch_index + attempt * max(self._num_common, 1)) % n
        offset = int.from_bytes(hashlib.sha256(f"{self.seed}:{branch_index}:{attempt}".encode()).digest()[:4], "big")
        return self._num_common + offset % spares

    def _common(self, slot: Slot, attempt: int, rng: random.Random) -> Candidate:
        if not self.seeds:
            return Candidate(slot.index, reason="no seed questions")
        position = self._seed_position(slot.branch_index, attempt)
        seed_record = self.seeds[self._seed_order[position]]
        options = list(seed_record.options)
        key_text = options[seed_record.letters.index(seed_record.gold)] if seed_record.gold else None
        if order_is_free(seed_record):
            order = list(range(len(options)))
            rng.shuffle(order)
            options = [options[i] for i in order]
        gold = LETTERS[options.index(key_text)] if key_text is not None else None
        record = QuestionRecord(
            id=f"kg-{self.seed}-{slot.index:06d}", question=seed_record.question, options=options, gold=gold,
            source="kg", knowledge_ids=[seed_record.id], rare=False, category=seed_record.category,
            question_type="seed", difficulty=slot.difficulty,
            meta={"origin": "seed", "seed_id": seed_record.id, "seed_pool": seed_record.source},
        )
        return Candidate(slot.index, record=record)
