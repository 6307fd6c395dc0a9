"""Tiny randomly initialised models of real architectures (Llama, Qwen2, Qwen3) for fast tests.

They use SmolLM2's real tokenizer (49,152 tokens, with its chat template), so prompts, answer
extraction and chat formatting behave exactly as with a real policy; only the weights are random.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from medssr_nemo.models.loading import EMBEDDED_SMOLLM2, load_tokenizer

_TINY_SHAPES: dict[str, dict[str, Any]] = {
    "llama": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2),
    "qwen2": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2,   # q/k/v carry biases
                  num_attention_heads=4, num_key_value_heads=2),
    "qwen3": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, head_dim=16),
}


def make_tiny_model(arch: str = "llama", seed: int = 0, tokenizer: Any = None, **overrides: Any) -> tuple[Any, Any]:
    """(model, tokenizer): a ``arch``-architecture model with a few hundred thousand weights
    per layer plus the 49k-token embedding, initialised from ``seed``; ``tokenizer`` replaces
    SmolLM2's (e.g. ``make_tiny_tokenizer``), the vocabulary following it."""
    from transformers import (LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM, Qwen3Config,
                              Qwen3ForCausalLM)

    if arch not in _TINY_SHAPES:
        raise ValueError(f"unknown tiny architecture {arch!r}; known: {sorted(_TINY_SHAPES)}")
    tokenizer = tokenizer if tokenizer is not None else load_tokenizer(EMBEDDED_SMOLLM2)
    shape = {**_TINY_SHAPES[arch], **overrides}
    common = dict(
        vocab_size=len(tokenizer),
        max_position_embeddings=2048,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    config_cls, model_cls = {"llama": (LlamaConfig, LlamaForCausalLM), "qwen2": (Qwen2Config, Qwen2ForCausalLM),
                             "qwen3": (Qwen3Config, Qwen3ForCausalLM)}[arch]
    config = config_cls(**common, **shape)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = model_cls(config)
    model.eval()
    return model, tokenizer


def save_tiny_model(directory: str | os.PathLike, arch: str = "llama", seed: int = 0, tokenizer: Any = None,
                    **overrides: Any) -> Path:
    """Write a tiny model as a Hugging Face directory that ``load_causal_lm`` accepts."""
    model, tokenizer = make_tiny_model(arch, seed, tokenizer, **overrides)
    directory = Path(directory)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


# Chat formats of the two families the paper trains, reduced to what a system/user/assistant
# conversation renders (no tools): Qwen3's ChatML, whose template drops an earlier assistant
# turn's <think> block, and Llama 3's header format (without Llama 3.1's date lines).
QWEN3_CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{%- if message.role == 'assistant' %}"
    "{{- '<|im_start|>assistant\\n' + message.content.split('</think>')[-1].lstrip('\\n') + '<|im_end|>\\n' }}"
    "{%- else %}{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)
LLAMA3_CHAT_TEMPLATE = (
    "{{- bos_token }}"
    "{%- for message in messages %}"
    "{{- '<|start_header_id|>' + message.role + '<|end_header_id|>\\n\\n' + message.content | trim + '<|eot_id|>' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}"
)
_TINY_TOKENIZER_CORPUS = [
    "You are a professional medical expert answering a multiple-choice medical question.",
    "Please think step by step and then provide exactly one final option.",
    "Format the final answer as: The answer is [LETTER]. Respond with one option only.",
    "The answer is A. The answer is B. The answer is C. The answer is D. The answer is E.",
    "Question: which enzyme is deficient? A. one B. two C. three D. four",
]


def make_tiny_tokenizer(family: str) -> Any:
    """A byte-level BPE tokenizer of a few hundred tokens with the special tokens and chat format
    of ``family`` (``qwen3``: no BOS, ChatML; ``llama3``: ``<|begin_of_text|>`` BOS, header
    format), built locally for tests that must not touch the hub."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    specials = {"qwen3": ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"],
                "llama3": ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
                           "<|eot_id|>"]}
    if family not in specials:
        raise ValueError(f"unknown tokenizer family {family!r}; known: {sorted(specials)}")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=specials[family],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(_TINY_TOKENIZER_CORPUS, trainer)
    if family == "qwen3":
        return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                       chat_template=QWEN3_CHAT_TEMPLATE)
    bos = tok.token_to_id("<|begin_of_text|>")
    tok.post_processor = processors.TemplateProcessing(single="<|begin_of_text|> $A",
                                                       special_tokens=[("<|begin_of_text|>", bos)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|begin_of_text|>", eos_token="<|eot_id|>",
                                   pad_token="<|end_of_text|>", chat_template=LLAMA3_CHAT_TEMPLATE)
