"""``eval``: the benchmark suite and the paper's evaluation protocol (``medssr eval``).

Defaults are the MedSSR paper's: temperature 0.6, top-p 0.95, top-k 20, 2048 new tokens,
4 samples per question, the paper script's answer extraction and one constrained re-decode for
outputs that state no answer. ``eval.greedy=true`` switches to one greedy sample.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Dict, List, Optional

from medssr_nemo.config.schema.answer import check_stage_extraction
from medssr_nemo.config.schema.common import ConfigValueError, check_choice, check_range

# The paper's ten benchmarks, with RareBench standing in for the hub-only RareDis-Sub.
DEFAULT_BENCHMARKS = [
    "medqa", "medmcqa", "pubmedqa", "bioasq", "mmlu",
    "lancet", "nejm", "medbullets", "medxpertqa", "rarebench",
]
FILE_FORMATS = ["medssr_json", "medxpertqa_jsonl", "records", "mcq_jsonl", "rarebench_jsonl", "raredis_hub"]


@dataclass
class CustomBenchmarkConfig:
    """A benchmark defined in config alone: a file, its format and whether it is rare-disease."""

    path: str = ""                      # absolute, or relative to the data root (MEDSSR_DATA)
    format: str = "medssr_json"         # one of FILE_FORMATS
    rare: bool = False                  # counts in the rare-disease column

    def __post_init__(self) -> None:
        check_choice("eval.custom_benchmarks.<name>.format", self.format, FILE_FORMATS)
        if not self.path:
            raise ConfigValueError("eval.custom_benchmarks.<name>.path is empty; give the benchmark file")


def parse_custom_benchmark(name: str, spec: Any) -> Dict[str, Any]:
    """Check one ``eval.custom_benchmarks`` entry; return it with defaults filled in."""
    if not isinstance(spec, dict):
        raise ConfigValueError(f"eval.custom_benchmarks.{name} must be a mapping {{path, format, rare}}, got {spec!r}")
    allowed = [f.name for f in fields(CustomBenchmarkConfig)]
    unknown = sorted(set(spec) - set(allowed))
    if unknown:
        raise ConfigValueError(f"eval.custom_benchmarks.{name} has unknown key(s) {unknown}; allowed: {allowed}")
    try:
        return asdict(CustomBenchmarkConfig(**spec))
    except ConfigValueError as err:
        raise ConfigValueError(str(err).replace("<name>", name)) from None


@dataclass
class EvalConfig:
    benchmarks: List[str] = field(default_factory=lambda: list(DEFAULT_BENCHMARKS))
    # name -> {path, format, rare} (see CustomBenchmarkConfig); evaluated alongside ``benchmarks``.
    # Typed Any so ``+eval.custom_benchmarks.<name>.path=...`` works; checked in __post_init__.
    custom_benchmarks: Dict[str, Any] = field(default_factory=dict)
    # model references to compare (embedded:..., HF directories, hub ids); empty = model.path
    checkpoints: List[str] = field(default_factory=list)
    checkpoint_labels: List[str] = field(default_factory=list)   # optional, one per checkpoint
    # chat | base for every checkpoint; null = per checkpoint (checkpoint_prompt_styles, else
    # model.prompt_style for model.path, else auto: base when the name says Base or the
    # tokenizer has no chat template, as the paper's script chooses)
    prompt_style: Optional[str] = None
    checkpoint_prompt_styles: List[Optional[str]] = field(default_factory=list)  # one per checkpoint: auto|chat|base|null
    answer_extraction: Optional[str] = None   # paper | lenient; null = answer.extraction
    temperature: float = 0.6
    top_p: float = 0.95
    top_k: int = 20                     # 0 = off
    max_new_tokens: int = 2048
    num_samples: int = 4                # samples per question; accuracy is averaged over them
    greedy: bool = False                # true: temperature 0 and one sample (overrides both)
    recovery: bool = True               # one constrained re-decode for outputs with no answer
    limit: Optional[int] = None         # per benchmark: a deterministic subsample of this size
    seed: int = 0                       # per-sample seeds derive from (seed, question id, sample)
    batch_size: int = 32                # sequences per engine call
    engine: Optional[str] = None        # rollout engine; null = rollout.engine
    output_dir: Optional[str] = None    # null = <output_dir>/eval
    chart: bool = True                  # write the PNG comparing checkpoints

    def __post_init__(self) -> None:
        self.custom_benchmarks = {name: parse_custom_benchmark(name, dict(spec) if hasattr(spec, "items") else spec)
                                  for name, spec in self.custom_benchmarks.items()}
        if self.prompt_style is not None:
            check_choice("eval.prompt_style", self.prompt_style, ["chat", "base", "auto", None])
        for i, style in enumerate(self.checkpoint_prompt_styles):
            check_choice(f"eval.checkpoint_prompt_styles[{i}]", style, ["chat", "base", "auto", None])
        if self.checkpoint_prompt_styles and len(self.checkpoint_prompt_styles) != len(self.checkpoints):
            raise ConfigValueError(
                f"eval.checkpoint_prompt_styles has {len(self.checkpoint_prompt_styles)} entries but eval.checkpoints "
                f"has {len(self.checkpoints)}; give one style (auto, chat, base or null) per checkpoint or none"
            )
        check_stage_extraction("eval.answer_extraction", self.answer_extraction)
        check_range("eval.temperature", self.temperature, 0.0)
        check_range("eval.top_p", self.top_p, 0.0, 1.0, low_open=True)
        check_range("eval.top_k", self.top_k, 0)
        check_range("eval.max_new_tokens", self.max_new_tokens, 1)
        check_range("eval.num_samples", self.num_samples, 1)
        check_range("eval.batch_size", self.batch_size, 1)
        if self.limit is not None:
            check_range("eval.limit", self.limit, 1)
        if self.checkpoint_labels and len(self.checkpoint_labels) != len(self.checkpoints):
            raise ConfigValueError(
                f"eval.checkpoint_labels has {len(self.checkpoint_labels)} entries but eval.checkpoints "
                f"has {len(self.checkpoints)}; give one label per checkpoint or none"
            )
        if len(set(self.benchmarks)) != len(self.benchmarks):
            raise ConfigValueError(f"eval.benchmarks lists a benchmark twice: {self.benchmarks}")
