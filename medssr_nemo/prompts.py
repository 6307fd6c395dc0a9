"""Prompt templates of the MedSSR paper: the one place synthesis, labelling, training and
evaluation build a model's input, so the four can never disagree.

Base (non-chat) models get ``BASE_INSTRUCTION`` followed by the question; chat models get
``CHAT_SYSTEM_PROMPT`` as the system message and the question as the user message.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from medssr_nemo.records import QuestionRecord

PromptStyle = Literal["base", "chat"]
PROMPT_STYLES = ("auto", "chat", "base")   # what a config may name; auto resolves per model

# Line for line the paper's evaluation template for base models (tdlhl/MedSSR COT_TEMPLATE).
BASE_INSTRUCTION = (
    "You are a professional medical expert answering a multiple-choice medical question.\n"
    "Please think step by step and then provide exactly one final option.\n"
    "Format the final answer as: The answer is [LETTER]."
)
CHAT_SYSTEM_PROMPT = (
    "Please think step by step and output the final answer as 'The answer is [LETTER]'."
)


def chat_messages(record: QuestionRecord) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": CHAT_SYSTEM_PROMPT},
        {"role": "user", "content": record.formatted()},
    ]


def base_prompt(record: QuestionRecord) -> str:
    return f"{BASE_INSTRUCTION}\n\nQuestion:\n{record.formatted()}\n\n"


def render_prompt(record: QuestionRecord, tokenizer: Any, style: PromptStyle) -> str:
    """The prompt text for ``record``: the chat template for ``chat``, plain text for ``base``."""
    if style == "chat":
        if getattr(tokenizer, "chat_template", None) is None:
            raise ValueError(
                "prompt style 'chat' needs a tokenizer with a chat template; "
                "this tokenizer has none (set prompt.style=base)"
            )
        return tokenizer.apply_chat_template(
            chat_messages(record), tokenize=False, add_generation_prompt=True
        )
    if style == "base":
        return base_prompt(record)
    raise ValueError(f"unknown prompt style {style!r}; allowed: 'base', 'chat'")


def encode_prompt(record: QuestionRecord, tokenizer: Any, style: PromptStyle) -> list[int]:
    """Token ids of the prompt; special tokens come from the template, never added twice."""
    return encode_text(render_prompt(record, tokenizer, style), tokenizer, style)


def encode_text(text: str, tokenizer: Any, style: PromptStyle) -> list[int]:
    """Token ids of a rendered prompt: a base prompt gets the tokenizer's BOS, a chat prompt
    already carries its template's special tokens."""
    return list(tokenizer(text, add_special_tokens=style == "base")["input_ids"])


_BASE_IN_NAME = re.compile(r"(?:^|[-_./:\\])base(?:$|[-_./:\\])", re.IGNORECASE)


def name_says_base(model_name: str) -> bool:
    """True when the model's name, the last part of its reference (``Qwen/Qwen3-8B-Base``,
    ``ckpts/qwen3-8b-base/``), has ``base`` as a separate word (not ``database``, ``baseline``);
    the directories above it do not count."""
    name = re.split(r"[/\\:]", model_name.rstrip("/\\"))[-1]
    return bool(_BASE_IN_NAME.search(name))


def resolve_prompt_style(style: str | None, model_name: str, tokenizer: Any) -> PromptStyle:
    """``chat``/``base`` as given; ``auto`` (or None) chooses as the paper's evaluation script
    does: base when the model's name says Base or its tokenizer has no chat template, else chat."""
    if style == "chat" or style == "base":
        return style
    if style not in (None, "auto"):
        raise ValueError(f"unknown prompt style {style!r}; allowed: {', '.join(PROMPT_STYLES)}")
    if name_says_base(model_name) or not getattr(tokenizer, "chat_template", None):
        return "base"
    return "chat"
