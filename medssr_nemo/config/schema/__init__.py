"""The typed config tree. Each section lives in its own module; a new section is one field here."""

from __future__ import annotations

from dataclasses import dataclass, field

from medssr_nemo.config.schema.answer import AnswerConfig
from medssr_nemo.config.schema.common import ConfigValueError
from medssr_nemo.config.schema.data import DataConfig
from medssr_nemo.config.schema.eval import EvalConfig
from medssr_nemo.config.schema.grpo import GRPOConfig
from medssr_nemo.config.schema.label import LabelConfig
from medssr_nemo.config.schema.launch import LaunchConfig
from medssr_nemo.config.schema.model import ModelConfig
from medssr_nemo.config.schema.pipeline import PipelineConfig
from medssr_nemo.config.schema.policy import PolicyConfig
from medssr_nemo.config.schema.reward import RewardConfig, RewardTermConfig
from medssr_nemo.config.schema.rollout import RolloutConfig
from medssr_nemo.config.schema.synthesis import SynthesisConfig
from medssr_nemo.config.schema.train import TrainConfig


@dataclass
class MedSSRConfig:
    seed: int = 0
    output_dir: str = "runs/default"
    model: ModelConfig = field(default_factory=ModelConfig)
    answer: AnswerConfig = field(default_factory=AnswerConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    grpo: GRPOConfig = field(default_factory=GRPOConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    data: DataConfig = field(default_factory=DataConfig)
    label: LabelConfig = field(default_factory=LabelConfig)
    synthesis: SynthesisConfig = field(default_factory=SynthesisConfig)
    launch: LaunchConfig = field(default_factory=LaunchConfig)
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)


__all__ = [
    "ConfigValueError", "GRPOConfig", "MedSSRConfig", "ModelConfig", "PipelineConfig", "PolicyConfig",
    "RewardConfig", "RewardTermConfig", "RolloutConfig", "TrainConfig",
]
