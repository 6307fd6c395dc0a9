"""The evaluation protocol: sampling settings, answer extraction mode and per-sample seeds.

Paper protocol (its released evaluation script, ``docs/evaluation.md``): sample each question
``num_samples`` times (temperature 0.6, top-p 0.95, top-k 20, 2048 new tokens); read the answer
with the script's rules (``medssr_nemo.answers``); an output with no answer is re-decoded once,
greedily, restricted to the benchmark's letters (``medssr_nemo.eval.redecode``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any

from medssr_nemo.rollout.interfaces import SamplingParams


@dataclass(frozen=True)
class EvalProtocol:
    """Everything that decides an evaluation's generations (stored with the results, so a resumed
    run can refuse to mix settings)."""

    prompt_style: str = "chat"         # resolved per checkpoint (runner.checkpoint_prompt_style)
    temperature: float = 0.6
    top_p: float = 0.95
    top_k: int = 20
    max_new_tokens: int = 2048
    num_samples: int = 4
    recovery: bool = True
    seed: int = 0
    answer_extraction: str = "paper"   # medssr_nemo.answers modes: paper | lenient

    @classmethod
    def from_config(cls, eval_cfg: Any, model_prompt_style: str, answer_extraction: str = "paper") -> "EvalProtocol":
        """From the ``eval`` config section; ``greedy`` means temperature 0 and one sample. The
        prompt style here is the default; the runner resolves each checkpoint's own."""
        greedy = bool(eval_cfg.greedy)
        return cls(
            prompt_style=eval_cfg.prompt_style or model_prompt_style, answer_extraction=answer_extraction,
            temperature=0.0 if greedy else float(eval_cfg.temperature),
            top_p=float(eval_cfg.top_p), top_k=int(eval_cfg.top_k),
            max_new_tokens=int(eval_cfg.max_new_tokens),
            num_samples=1 if greedy else int(eval_cfg.num_samples),
            recovery=bool(eval_cfg.recovery), seed=int(eval_cfg.seed),
        )

    def sampling(self) -> SamplingParams:
        return SamplingParams(temperature=self.temperature, top_p=self.top_p, top_k=self.top_k,
                              max_new_tokens=self.max_new_tokens)

    def fingerprint(self) -> dict[str, Any]:
        return asdict(self)


def sample_seed(seed: int, question_id: str, sample: int) -> int:
    """The seed of one (question, sample): a hash, so it does not depend on which other
    questions run, in what order, or whether the run was resumed."""
    digest = hashlib.sha256(json.dumps([seed, question_id, sample]).encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1   # non-negative int64
