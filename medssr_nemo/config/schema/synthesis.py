"""``synthesis``: ``medssr synth``, distribution-controlled question synthesis.

The target mix: ``alpha`` is the rare ratio (the paper's rho < alpha gate, drawn per question);
``question_types``, ``difficulties`` and ``categories`` are relative weights over the questions
that inject rare-disease knowledge (categories are disease groups, HPO organ systems such as
``nervous_system``; empty = uncontrolled, the knowledge base's own mix). The synthesizer plans every
question's attributes from ``seed`` before generating, and the run card reports the achieved mix
next to this target.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from medssr_nemo.config.schema.common import ConfigValueError, check_choice, check_range

KG_QUESTION_TYPES = ["diagnosis", "gene", "inheritance", "not_expected"]
DIFFICULTIES = ["easy", "medium", "hard"]
SEED_POOLS = ["medmcqa", "pubmedqa", "mmlu"]


def _default_types() -> Dict[str, float]:
    return {"diagnosis": 0.4, "gene": 0.2, "inheritance": 0.2, "not_expected": 0.2}


def _default_difficulties() -> Dict[str, float]:
    return {"easy": 1.0, "medium": 1.0, "hard": 1.0}


@dataclass
class FilterConfig:
    min_options: int = 2
    max_options: int = 10
    dedup: bool = True
    dedup_threshold: float = 0.8        # estimated Jaccard of word 3-gram shingles (stem + key)
    dedup_num_perm: int = 128           # MinHash permutations
    decontaminate: bool = True          # drop anything matching an evaluation item (data.decontam knobs)

    def __post_init__(self) -> None:
        check_range("synthesis.filters.min_options", self.min_options, 2)
        check_range("synthesis.filters.max_options", self.max_options, self.min_options, 26)
        check_range("synthesis.filters.dedup_threshold", self.dedup_threshold, 0.0, 1.0, low_open=True)
        check_range("synthesis.filters.dedup_num_perm", self.dedup_num_perm, 16, 1024)


@dataclass
class GeneratorConfig:
    """The ``llm`` synthesizer's generator: an OpenAI-compatible endpoint or one of our engines."""

    kind: str = "http"                  # http | rollout_engine
    base_url: str = "http://127.0.0.1:8000/v1"
    model: str = ""                     # http: the served model name; rollout_engine: a model path (default model.path)
    api_key_env: str = "OPENAI_API_KEY"  # the key is read from this environment variable, never from config
    timeout_s: float = 60.0
    max_retries: int = 4
    backoff_s: float = 1.0              # first retry wait; doubled each retry (Retry-After wins when sent)
    max_requests_per_s: float = 0.0     # 0 = no rate limit
    temperature: float = 0.7
    top_p: float = 0.95
    max_new_tokens: int = 768           # reasoning models think first: give them e.g. 4096 (the <think> block is dropped)
    extra_body: Dict[str, Any] = field(default_factory=dict)  # http: merged into each request body, e.g.
    # {chat_template_kwargs: {enable_thinking: false}} to turn a model's thinking off
    engine: str = "inprocess"           # rollout_engine kind: a registered rollout_engine
    batch_size: int = 8                 # prompts per generator call

    def __post_init__(self) -> None:
        check_choice("synthesis.generator.kind", self.kind, ["http", "rollout_engine"])
        check_range("synthesis.generator.timeout_s", self.timeout_s, 0.0, low_open=True)
        check_range("synthesis.generator.max_retries", self.max_retries, 0)
        check_range("synthesis.generator.backoff_s", self.backoff_s, 0.0)
        check_range("synthesis.generator.max_requests_per_s", self.max_requests_per_s, 0.0)
        check_range("synthesis.generator.temperature", self.temperature, 0.0)
        check_range("synthesis.generator.top_p", self.top_p, 0.0, 1.0, low_open=True)
        check_range("synthesis.generator.max_new_tokens", self.max_new_tokens, 1)
        check_range("synthesis.generator.batch_size", self.batch_size, 1)


@dataclass
class SynthesisConfig:
    synthesizer: str = "kg"             # a registered synthesizer (kg, llm) or a dotted path
    knowledge: str = "hpo"              # a registered knowledge_source (hpo, corpus) or a dotted path
    knowledge_options: Dict[str, str] = field(default_factory=dict)  # e.g. {path: corpus.jsonl} for corpus
    corpus: Optional[str] = None        # llm: an extra MedRAG-layout snippet corpus retrieved per question
    alpha: float = 0.3                  # share of questions that inject rare-disease knowledge
    num_questions: int = 1000
    seed: int = 0
    num_options: int = 5
    distinct_margin: float = 2.0        # nats: a distractor must explain a case this much worse than the key
    question_types: Dict[str, float] = field(default_factory=_default_types)
    difficulties: Dict[str, float] = field(default_factory=_default_difficulties)
    categories: Dict[str, float] = field(default_factory=dict)
    seed_pools: List[str] = field(default_factory=lambda: ["medmcqa", "mmlu"])  # non-rare seed questions
    chunk_size: int = 250               # questions per persisted chunk (the unit of resumption)
    max_attempts: int = 6               # tries per planned question before it is given up
    output_name: str = "synthetic"      # <output_dir>/<output_name>.jsonl and .card.json
    show_progress: bool = True
    blind_solve: bool = False           # llm: a second model answers each question without the knowledge; drop on disagreement
    blind_solver_model: str = ""        # the second model's name on the same endpoint ("" = the generator's model)
    filters: FilterConfig = field(default_factory=FilterConfig)
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)

    def __post_init__(self) -> None:
        check_range("synthesis.alpha", self.alpha, 0.0, 1.0)
        check_range("synthesis.num_questions", self.num_questions, 1)
        check_range("synthesis.num_options", self.num_options, 2, 10)
        check_range("synthesis.distinct_margin", self.distinct_margin, 0.0)
        check_range("synthesis.chunk_size", self.chunk_size, 1)
        check_range("synthesis.max_attempts", self.max_attempts, 1)
        for key in ("question_types", "difficulties", "categories"):
            weights = getattr(self, key)
            for name, weight in weights.items():
                check_range(f"synthesis.{key}.{name}", weight, 0.0)
            if weights and sum(weights.values()) <= 0:
                raise ConfigValueError(f"synthesis.{key} weights sum to 0; give at least one positive weight")
        if not self.question_types:
            raise ConfigValueError(f"synthesis.question_types is empty; choose weights over {KG_QUESTION_TYPES}")
        bad = sorted(set(self.difficulties) - set(DIFFICULTIES))
        if bad or not self.difficulties:
            raise ConfigValueError(f"synthesis.difficulties has unknown level(s) {bad}; allowed: {DIFFICULTIES}")
        unknown = [p for p in self.seed_pools if p not in SEED_POOLS]
        if unknown or not self.seed_pools:
            raise ConfigValueError(f"synthesis.seed_pools={list(self.seed_pools)}; choose some of {SEED_POOLS}")
        if not self.output_name or "/" in self.output_name:
            raise ConfigValueError(f"synthesis.output_name={self.output_name!r} must be a plain file stem (no '/')")
