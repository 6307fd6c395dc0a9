"""What the ``llm`` synthesizer asks its generator for, and the strict reader of the answer.

The generator must answer in exactly this layout (text before ``Question:`` is ignored, and so is
text after the ``Answer:`` line unless it starts another question)::

    Question: <stem, may span lines>
    A. <option>
    B. <option>
    ...
    Answer: <letter>

Anything else is dropped with a countable reason (``ParseError.reason``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from medssr_nemo.records import LETTERS, QuestionRecord

SYSTEM_PROMPT = ("You are a medical educator who writes rigorous multiple-choice exam questions. "
                 "Every question has exactly one correct option.")

QUESTION_TYPE_TASKS = {
    "diagnosis": "a clinical vignette (age, sex, presenting findings) whose answer is the diagnosis",
    "gene": "a question whose answer is the gene in which pathogenic variants cause the condition",
    "inheritance": "a question whose answer is the mode of inheritance of the condition",
    "not_expected": "a question asking which finding is NOT expected in the condition",
}
DIFFICULTY_TASKS = {
    "easy": "easy: the distractors are clearly wrong to a well-prepared student",
    "medium": "of medium difficulty",
    "hard": "hard: the distractors are close alternatives that a specialist must rule out",
}

_QUESTION = re.compile(r"^\s*\**\s*question\s*\**\s*:\s*\**\s*(.*)$", re.IGNORECASE)
_OPTION = re.compile(r"^\s*\(?([A-Z])[.)]\s+(.*\S)\s*$")
_ANSWER = re.compile(r"^\s*\**\s*(?:correct\s+)?answer\s*\**\s*:\s*\**\s*\(?([A-Za-z])\)?[.\s*]*$", re.IGNORECASE)


class ParseError(ValueError):
    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason, self.detail = reason, detail


@dataclass
class ParsedQuestion:
    stem: str
    options: list[str]
    answer: str


def build_prompt(seed: QuestionRecord, num_options: int, difficulty: str | None, question_type: str | None,
                 knowledge: str | None) -> list[dict[str, str]]:
    """The chat conversation for one slot: rewrite ``seed``; when ``knowledge`` is given (a rare
    slot), the new question must be built on it."""
    last = LETTERS[num_options - 1]
    parts = []
    if knowledge:
        parts.append("Write a NEW multiple-choice question built on the rare-disease knowledge below; the "
                     "correct answer must follow from this knowledge. Use the seed question only as a model "
                     "of style and format.")
        parts.append(f"Knowledge:\n{knowledge.strip()}")
        if question_type in QUESTION_TYPE_TASKS:
            parts.append(f"Make it {QUESTION_TYPE_TASKS[question_type]}.")
    else:
        parts.append("Rewrite the seed question into a NEW multiple-choice question on the same medical topic "
                     "that tests different knowledge or a different step of reasoning. Do not copy its wording.")
    parts.append(f"Seed question:\n{seed.formatted()}")
    requirement = f"Requirements: exactly {num_options} options labelled A to {last}; exactly one is correct"
    if difficulty in DIFFICULTY_TASKS:
        requirement += f"; the question is {DIFFICULTY_TASKS[difficulty]}"
    parts.append(requirement + ".")
    parts.append("Reply in exactly this format and nothing else:\nQuestion: <the question>\n"
                 + "\n".join(f"{letter}. <option>" for letter in LETTERS[:num_options])
                 + "\nAnswer: <one letter>")
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": "\n\n".join(parts)}]


def parse_question(text: str | None, num_options: int | None = None) -> ParsedQuestion:
    """Read one question from generator output, or raise ``ParseError`` with the reason."""
    if text is None or not text.strip():
        raise ParseError("empty output")
    lines = text.replace("\r\n", "\n").split("\n")
    start = next((i for i, line in enumerate(lines) if _QUESTION.match(line)), None)
    if start is None:
        raise ParseError("no 'Question:' line", text[:120])
    stem_lines = [_QUESTION.match(lines[start]).group(1)]
    i = start + 1
    while i < len(lines) and not _OPTION.match(lines[i]) and not _ANSWER.match(lines[i]):
        stem_lines.append(lines[i])
        i += 1
    stem = "\n".join(stem_lines).strip()
    if not stem:
        raise ParseError("empty question stem")
    options: list[str] = []
    while i < len(lines):
        match = _OPTION.match(lines[i])
        if match:
            if match.group(1) != LETTERS[len(options)]:
                raise ParseError("options not lettered A, B, C, ... in order",
                                 f"expected {LETTERS[len(options)]}, found {match.group(1)}")
            options.append(match.group(2).strip())
        elif lines[i].strip() and not _ANSWER.match(lines[i]):
            if not options:
                raise ParseError("no option lines", lines[i][:120])
            options[-1] += " " + lines[i].strip()   # an option wrapped over two lines
        elif _ANSWER.match(lines[i]):
            break
        i += 1
    if len(options) < 2:
        raise ParseError("no option lines" if not options else "only one option")
    if num_options is not None and len(options) != num_options:
        raise ParseError("wrong number of options", f"asked for {num_options}, got {len(options)}")
    if i >= len(lines):
        raise ParseError("no 'Answer: X' line")
    answer = _ANSWER.match(lines[i]).group(1).upper()
    if answer not in LETTERS[:len(options)]:
        raise ParseError("answer letter not among the options", f"Answer: {answer} with {len(options)} options")
    if any(_QUESTION.match(line) for line in lines[i + 1:]):
        raise ParseError("more than one question")
    return ParsedQuestion(stem=stem, options=options, answer=answer)


GROUNDED_TASKS = {
    "diagnosis": "Write a clinical vignette of this patient (keep the stated age and sex, describe every "
                 "finding in natural clinical language) that asks for the most likely diagnosis.",
    "gene": "Write a question that asks which gene's pathogenic variants cause the condition.",
    "inheritance": "Write a question that asks for the condition's mode of inheritance.",
    "not_expected": "Write a question that asks which finding is NOT a feature of the condition.",
}


def build_grounded_prompt(facts: str, draft_stem: str, options: list[str], key: str, question_type: str,
                          forbidden: list[str]) -> list[dict[str, str]]:
    """The conversation for a rare slot with a knowledge-base draft: the merged profile's facts, a
    draft stem, and the options (key and knowledge-base-chosen distractors) to use verbatim. The
    model rewrites the stem into a natural exam question; it may not change the options or the key,
    and it must not name what ``forbidden`` lists (the disease and its genes, where naming them
    would give the answer away)."""
    parts = [
        "Rewrite the draft below into a natural, rigorous exam question. The facts come from a curated "
        "rare-disease knowledge base; do not add findings that are not in them.",
        f"Facts:\n{facts.strip()}",
        f"Draft question:\n{draft_stem.strip()}",
        GROUNDED_TASKS.get(question_type, ""),
        "Options (use exactly these texts, in any order):\n" + "\n".join(f"- {o}" for o in options),
        f"The correct answer is: {key}",
    ]
    if forbidden:
        parts.append("Do NOT write any of these in the question: " + "; ".join(forbidden) + ".")
    parts.append("Reply in exactly this format and nothing else:\nQuestion: <the question>\n"
                 + "\n".join(f"{letter}. <option>" for letter in LETTERS[:len(options)])
                 + "\nAnswer: <one letter>")
    return [{"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": "\n\n".join(p for p in parts if p)}]


def build_blind_prompt(stem: str, options: list[str]) -> list[dict[str, str]]:
    """Ask a second model to answer a generated question without the knowledge behind it."""
    text = stem.strip() + "\n" + "\n".join(f"{LETTERS[i]}. {o}" for i, o in enumerate(options))
    return [{"role": "system", "content": "You are a physician answering a multiple-choice exam question."},
            {"role": "user", "content": text + "\n\nEnd your reply with a line 'Answer: <letter>'."}]


_THINK = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)
_LAST_ANSWER = re.compile(r"answer\s*(?:is)?\s*[:\-]?\s*\**\(?([A-Z])\)?\**", re.IGNORECASE)


def strip_reasoning(text: str | None) -> str | None:
    """A reasoning model's reply without its ``<think>...</think>`` block (an unclosed block means
    the model ran out of tokens before answering: nothing usable is left)."""
    if text is None:
        return None
    text = _THINK.sub("", text)
    if re.search(r"<think>", text, re.IGNORECASE):
        return ""
    return text


def read_blind_answer(text: str | None, num_options: int) -> str | None:
    """The last 'Answer: X' letter in a blind solver's reply, if it names an option."""
    text = strip_reasoning(text) or ""
    found = [m.group(1).upper() for m in _LAST_ANSWER.finditer(text)]
    return found[-1] if found and found[-1] in LETTERS[:num_options] else None
