"""``model``: which policy to train and how to prompt it (one YAML per size in conf/model/)."""

from __future__ import annotations

from dataclasses import dataclass

from medssr_nemo.config.schema.common import check_choice, check_range


@dataclass
class ModelConfig:
    name: str = "smollm2-135m"
    # embedded:smollm2-135m-instruct, a local Hugging Face directory, or a hub id
    path: str = "embedded:smollm2-135m-instruct"
    # chat: system prompt + chat template; base: the paper's raw template; auto: base when the
    # name says Base or the tokenizer has no chat template (the paper script's choice), else chat
    prompt_style: str = "auto"
    dtype: str = "float32"              # weights' dtype for training (bf16 autocast is policy.bf16)
    max_prompt_tokens: int = 1024       # longer prompts are truncated from the left of the stem
    tensor_parallel_size: int = 1
    pipeline_parallel_size: int = 1

    def __post_init__(self) -> None:
        check_choice("model.prompt_style", self.prompt_style, ["auto", "chat", "base"])
        check_choice("model.dtype", self.dtype, ["float32", "bfloat16", "float16"])
        check_range("model.max_prompt_tokens", self.max_prompt_tokens, 8)
        check_range("model.tensor_parallel_size", self.tensor_parallel_size, 1)
        check_range("model.pipeline_parallel_size", self.pipeline_parallel_size, 1)
