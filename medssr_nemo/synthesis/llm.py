"""The ``llm`` synthesizer: a generator model writes questions grounded in the knowledge base.

Rare slots (rho < alpha) with a knowledge source that has disease profiles (``hpo``): the ``kg``
question builder drafts the question first over the merged profiles (``knowledge.merge``): target
disease, key, knowledge-base-chosen distractors and, for a case, a coherent patient with its
findings, all passing the distinctiveness and leakage rules. The prompt gives the merged profile's
fact sheet (plus, with ``synthesis.corpus``, the best BM25 passages), the draft and the options to
use verbatim, and forbids naming the disease (diagnosis) or the gene (gene questions). The reply
is then verified: the options must be the given ones and the answer the knowledge base's key
(else "key not verified"), and the stem passes the leakage filter. With a plain corpus, the
passages retrieved for a seed question are given and the generator's own key is kept.

Non-rare slots rewrite a seed question (a seeded permutation of the decontaminated training pools,
no repeats while the pool lasts); a rewrite that is still a near copy of its seed is dropped.

``synthesis.blind_solve``: a second model (``blind_solver_model``) answers every question without
the knowledge; a disagreement with the key is a drop. Replies of reasoning models lose their
``<think>`` block before parsing. Every failure is a counted, explained drop and the slot is
retried.
"""

from __future__ import annotations

import hashlib
import random
from typing import Any, Sequence

from medssr_nemo.knowledge.interfaces import KnowledgeSource
from medssr_nemo.knowledge.names import normalise
from medssr_nemo.knowledge.render import profile_text
from medssr_nemo.records import QuestionRecord, RecordError
from medssr_nemo.synthesis.audit import auditor_for
from medssr_nemo.synthesis.distinct import DEFAULT_MARGIN
from medssr_nemo.synthesis.generators import Generator
from medssr_nemo.synthesis.interfaces import Candidate, Synthesizer
from medssr_nemo.synthesis.kg_questions import NoEligibleDisease, Unbuildable
from medssr_nemo.synthesis.llm_format import (QUESTION_TYPE_TASKS, ParseError, build_blind_prompt, build_grounded_prompt,
                                              build_prompt, parse_question, read_blind_answer, strip_reasoning)
from medssr_nemo.synthesis.plan import Slot

DIFFICULTIES = ("easy", "medium", "hard")
MAX_SEED_OVERLAP = 0.6      # word-3-gram Jaccard of a rewrite with its seed above which it is a copy


def _shingles(text: str) -> set[str]:
    words = normalise(text).split()
    return {" ".join(words[i:i + 3]) for i in range(max(1, len(words) - 2))}


def seed_overlap(a: str, b: str) -> float:
    sa, sb = _shingles(a), _shingles(b)
    return len(sa & sb) / len(sa | sb) if sa | sb else 1.0


def sample_seed(seed: int, slot: int, attempt: int) -> int:
    """A 31-bit generation seed from (run seed, slot, attempt), the same on every machine."""
    digest = hashlib.sha256(f"llm:{seed}:{slot}:{attempt}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


class LLMSynthesizer(Synthesizer):
    name = "llm"
    nonrare_dimensions = ("difficulty",)

    def __init__(self, generator: Generator, knowledge: KnowledgeSource, seeds: Sequence[QuestionRecord],
                 seed: int = 0, num_options: int = 5, corpus: KnowledgeSource | None = None,
                 passages_per_question: int = 3, blind_solver: Generator | None = None,
                 margin: float | None = None) -> None:
        if not seeds:
            raise ValueError("the llm synthesizer rewrites seed questions, but the seed pool is empty")
        self.generator = generator
        self.knowledge = knowledge
        self.corpus = corpus
        self.seeds = list(seeds)
        self.seed = seed
        self.num_options = num_options
        self.passages_per_question = passages_per_question
        self.blind_solver = blind_solver
        self.builder = None
        if knowledge.profiles() and getattr(knowledge, "ontology", None) is not None:
            self.builder = auditor_for(knowledge, DEFAULT_MARGIN if margin is None else margin, num_options).b
        self.profiles = list(self.builder.profiles) if self.builder is not None else \
            [p for p in knowledge.profiles() if p.rare]
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
        """What the card records; with merged profiles, the merge report (what twins were merged and
        which conflicting annotations were dropped), as the kg synthesizer's card has it."""
        merge = getattr(self.knowledge, "_merged_view", None) if self.builder is not None else None
        return {"name": self.name, "generator": self.generator.describe(), "seed_questions": len(self.seeds),
                "rare_profiles": len(self.profiles), "grounded_in_merged_profiles": self.builder is not None,
                "blind_solver": self.blind_solver.describe() if self.blind_solver is not None else None,
                **({"merge": merge.report.to_dict()} if merge is not None else {})}

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

    def _grounded(self, slot: Slot, rng: random.Random) -> tuple[Any, Any, list[dict[str, str]], list[str]]:
        """(profile, built draft, conversation, option texts) for a rare slot over merged profiles."""
        qtype, difficulty = slot.question_type or "diagnosis", slot.difficulty or "medium"
        try:
            target, built = self.builder.draw_and_build(qtype, difficulty, slot.category, rng)
        except NoEligibleDisease as err:
            raise ParseError("no eligible disease", str(err)) from err
        except Unbuildable as err:
            raise ParseError("no buildable draft", str(err)[:300]) from err
        profile = self.builder.profiles[target]
        facts = profile_text(profile)
        if self.corpus is not None:
            for passage in self.corpus.retrieve(profile.name, self.passages_per_question):
                facts += f"\n\nFrom {passage.title or passage.id}: {passage.text}"
        forbidden = []
        if qtype == "diagnosis" or not built.meta.get("stem_names_disease"):
            forbidden += [profile.name, *profile.synonyms[:3], *profile.genes]
            # the model cannot copy into the stem what it is not shown
            facts = "\n".join(line for line in facts.splitlines()
                              if not line.startswith(("Disease:", "Also known as:", "Genes:")))
        if qtype == "gene":
            forbidden.append(built.key)
        options = [built.key, *built.distractors]
        rng.shuffle(options)
        conversation = build_grounded_prompt(facts, built.stem, options, built.key, qtype,
                                             list(dict.fromkeys(forbidden)))
        return profile, built, conversation, options

    def synthesize(self, slots: Sequence[Slot], attempt: int) -> list[Candidate]:
        results: dict[int, Candidate] = {}
        jobs = []   # (slot, seed record, knowledge ids, profile, conversation, built draft)
        for slot in slots:
            rng = random.Random(f"llm:{self.seed}:{slot.index}:{attempt}")
            seed_record = self._seed_record(slot, attempt)
            knowledge, ids, profile, built = None, [seed_record.id], None, None
            try:
                if slot.rare and self.builder is not None:
                    profile, built, conversation, _ = self._grounded(slot, rng)
                    ids = list(built.knowledge_ids)
                    jobs.append((slot, seed_record, ids, profile, conversation, built))
                    continue
                if slot.rare:
                    knowledge, extra, profile = self._knowledge_for(slot, seed_record, rng)
                    ids += extra
            except ParseError as err:
                results[slot.index] = Candidate(slot.index, reason=err.reason, detail=err.detail)
                continue
            conversation = build_prompt(seed_record, self.num_options, slot.difficulty,
                                        slot.question_type if slot.rare else None, knowledge)
            jobs.append((slot, seed_record, ids, profile, conversation, None))
        outputs = self.generator.generate([j[4] for j in jobs],
                                          [sample_seed(self.seed, j[0].index, attempt) for j in jobs])
        made = []
        for (slot, seed_record, ids, profile, _, built), output in zip(jobs, outputs):
            candidate = self._candidate(slot, seed_record, ids, profile, output, built)
            results[slot.index] = candidate
            if candidate.record is not None:
                made.append(candidate.record)
        if self.blind_solver is not None and made:
            self._blind_check(made, results, attempt)
        return [results[slot.index] for slot in slots]

    def _blind_check(self, records: list[QuestionRecord], results: dict[int, Candidate], attempt: int) -> None:
        """Drop every question a second model, without the knowledge, answers differently."""
        replies = self.blind_solver.generate([build_blind_prompt(r.question, r.options) for r in records],
                                             [sample_seed(self.seed + 1, int(r.id.rsplit("-", 1)[1]), attempt)
                                              for r in records])
        for record, reply in zip(records, replies):
            index = int(record.id.rsplit("-", 1)[1])
            answer = read_blind_answer(reply.text, len(record.options))
            if answer != record.gold:
                results[index] = Candidate(index, reason="blind solve disagrees",
                                           detail=f"{record.id}: key {record.gold}, blind answer {answer}")
            else:
                record.meta["blind_solve"] = "agrees"

    def _candidate(self, slot: Slot, seed_record: QuestionRecord, ids: list[str], profile: Any, output,
                   built: Any = None) -> Candidate:
        if output.text is None:
            return Candidate(slot.index, reason=f"generator: {output.error}", detail=output.detail)
        try:
            parsed = parse_question(strip_reasoning(output.text), self.num_options)
            if built is not None:
                self._verify_grounded(slot, parsed, built, profile)
            elif not slot.rare and seed_overlap(parsed.stem, seed_record.question) > MAX_SEED_OVERLAP:
                raise ParseError("copy of the seed", parsed.stem[:120])
            qtype = slot.question_type if slot.rare else "rewrite"
            meta = {"origin": "generator", "seed_id": seed_record.id,
                    "key_source": "knowledge base" if built is not None else "generator",
                    **({"disease_id": profile.id, "disease": profile.name} if profile is not None else {})}
            if built is not None:
                meta.update({k: v for k, v in built.meta.items() if k in ("stem_names_disease", "option_findings")})
            record = QuestionRecord(
                id=f"llm-{self.seed}-{slot.index:06d}", question=parsed.stem, options=parsed.options,
                gold=parsed.answer, source="llm", knowledge_ids=ids, rare=slot.rare,
                category=profile.category if profile is not None else seed_record.category,
                question_type=qtype, difficulty=slot.difficulty, meta=meta,
            )
        except ParseError as err:
            prefix = "" if err.reason in ("key not verified", "options changed", "leakage", "copy of the seed") \
                else "unparseable: "
            return Candidate(slot.index, reason=f"{prefix}{err.reason}", detail=err.detail or output.text[:200])
        except RecordError as err:
            return Candidate(slot.index, reason="unparseable: invalid record", detail=str(err)[:200])
        return Candidate(slot.index, record=record)

    def _verify_grounded(self, slot: Slot, parsed, built, profile) -> None:
        """The reply keeps the knowledge base's options and key, and does not leak it."""
        given = sorted(normalise(o) for o in [built.key, *built.distractors])
        if sorted(normalise(o) for o in parsed.options) != given:
            raise ParseError("options changed", f"{parsed.options} vs {[built.key, *built.distractors]}")
        answer = parsed.options["ABCDEFGHIJ".index(parsed.answer)]
        if normalise(answer) != normalise(built.key):
            raise ParseError("key not verified", f"generator chose {answer!r}; the knowledge base's key is {built.key!r}")
        qtype = slot.question_type or "diagnosis"
        leak = self.builder.leakage.stem_leak(parsed.stem, qtype, built.key, profile,
                                              stem_names_disease=bool(built.meta.get("stem_names_disease")))
        if leak:
            raise ParseError("leakage", leak)
