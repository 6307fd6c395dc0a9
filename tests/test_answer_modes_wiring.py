"""The extraction mode reaches each stage that reads answers: GRPO rewards score with the
``reward`` stage's mode, and each evaluated checkpoint's prompt style comes from the documented
order (per-checkpoint override, eval.prompt_style, model.prompt_style for model.path, auto)."""

from __future__ import annotations

from medssr_nemo.answers import AnswerReader
from medssr_nemo.config import load_config
from medssr_nemo.config.schema.answer import answer_extraction
from medssr_nemo.eval.runner import checkpoints_from_config
from medssr_nemo.grpo.data import TrainingQuestion
from medssr_nemo.grpo.rollouts import score_groups
from medssr_nemo.records import QuestionRecord
from medssr_nemo.rewards.composite import RewardRouter
from medssr_nemo.rollout.interfaces import Completion

RECORD = QuestionRecord(id="q", question="Q?", options=["w", "x", "y", "z"], gold="B", label="B", label_source="gold")
TEXTS = ["The answer is (B)", "The answer is B", "the answer is b", "The answer is E. No: the answer is (B)"]


def _rewards(mode: str) -> list[float]:
    cfg = load_config("base", [f"reward.answer_extraction={mode}"])
    reader = AnswerReader(answer_extraction(cfg, "reward"), cfg.model.path)
    groups = [[Completion([1], t, [0.0], "stop", 0) for t in TEXTS]]
    scored = score_groups(RewardRouter.from_config(cfg.reward), [TrainingQuestion(RECORD, "p", [1])], groups, reader)
    return scored.rewards.tolist()


def test_rewards_follow_the_reward_stages_extraction_mode():
    assert _rewards("paper") == [0.0, 1.0, 1.0, 0.0]      # "(B)" is no answer; E is read (and wrong)
    assert _rewards("lenient") == [1.0, 1.0, 1.0, 1.0]    # "(B)" counts; E is ignored, (B) stands


def test_prompt_style_order_per_checkpoint():
    cfg = load_config("base", ["model.path=org/model-Base", "model.prompt_style=base",
                               "eval.checkpoints=[org/model-Base,runs/x/hf_model,org/other]",
                               "eval.checkpoint_prompt_styles=[null,null,chat]"])
    assert [c.prompt_style for c in checkpoints_from_config(cfg)] == ["base", "auto", "chat"]
    cfg = load_config("base", ["eval.prompt_style=base", "eval.checkpoints=[a/b,c/d]"])
    assert [c.prompt_style for c in checkpoints_from_config(cfg)] == ["base", "base"]
