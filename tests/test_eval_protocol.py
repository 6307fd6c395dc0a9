"""The evaluation protocol: paper defaults, answer extraction against the paper's own rules,
the constrained re-decode, seeds, and accuracy as mean/std over samples."""

from __future__ import annotations

import re

import numpy as np
import pytest

from medssr_nemo.answers import extract_answer
from medssr_nemo.config import load_config
from medssr_nemo.eval.answering import WorkItem, answer_items, recover_letters
from medssr_nemo.eval.metrics import benchmark_metrics, summarize
from medssr_nemo.eval.protocol import EvalProtocol, recovery_prompt, recovery_tokens, sample_seed
from medssr_nemo.prompts import RECOVERY_SUFFIX, encode_prompt
from medssr_nemo.records import QuestionRecord
from medssr_nemo.rollout.interfaces import Completion

ABCD = list("ABCD")


def test_defaults_are_the_papers_protocol():
    cfg = load_config("base", [])
    protocol = EvalProtocol.from_config(cfg.eval, cfg.model.prompt_style)
    assert (protocol.temperature, protocol.top_p, protocol.top_k) == (0.6, 0.95, 20)
    assert (protocol.max_new_tokens, protocol.num_samples, protocol.recovery) == (2048, 4, True)
    assert protocol.prompt_style == "chat"          # from the model config (SmolLM2-Instruct)
    assert cfg.eval.benchmarks == ["medqa", "medmcqa", "pubmedqa", "bioasq", "mmlu", "lancet", "nejm",
                                   "medbullets", "medxpertqa", "rarebench"]


def test_greedy_is_one_override_and_every_setting_is_a_key():
    cfg = load_config("base", ["eval.greedy=true"])
    protocol = EvalProtocol.from_config(cfg.eval, "chat")
    assert protocol.temperature == 0.0 and protocol.num_samples == 1
    cfg = load_config("base", ["eval.top_k=5", "eval.max_new_tokens=64", "eval.prompt_style=base", "eval.recovery=false"])
    protocol = EvalProtocol.from_config(cfg.eval, "chat")
    assert (protocol.top_k, protocol.max_new_tokens, protocol.prompt_style, protocol.recovery) == (5, 64, "base", False)


PAPER_BASE_TEMPLATE = """You are a professional medical expert answering a multiple-choice medical question.
Please think step by step and then provide exactly one final option.
Format the final answer as: The answer is [LETTER].

Question:
{question}

"""


def test_prompts_are_the_papers_templates():
    """Base models get the paper's COT_TEMPLATE around the question text; chat models its system
    prompt and the question as the user turn (tdlhl/MedSSR vllm_logitsbias_multi.py)."""
    from medssr_nemo.eval.benchmarks import get_benchmark
    from medssr_nemo.prompts import base_prompt, chat_messages

    record = get_benchmark("pubmedqa").load()[0]
    paper_question = "Proof of concept study: does fenofibrate have a role in sleep apnoea syndrome?\nA. yes\nB. no\nC. maybe"
    assert base_prompt(record) == PAPER_BASE_TEMPLATE.format(question=paper_question)
    assert chat_messages(record) == [
        {"role": "system", "content": "Please think step by step and output the final answer as 'The answer is [LETTER]'."},
        {"role": "user", "content": paper_question},
    ]


# ---- extraction: the paper's rules --------------------------------------------------------------

def paper_extract(prediction: str) -> str | None:
    """The paper's rule as its evaluation script states it (tdlhl/MedSSR), as an independent
    reference: exact-case forms first (last match of the first form found), then any case."""
    for pattern in (r"The answer is ([A-Z])", r"The answer is \$\\boxed{([A-Z])}\$", r"The answer is \[([A-Z])\]"):
        matches = list(re.finditer(pattern, prediction.strip()))
        if matches:
            return matches[-1].group(1)
    matches = list(re.finditer(r"The answer is ([A-Z])", prediction.strip(), re.IGNORECASE))
    return matches[-1].group(1).upper() if matches else None


AGREED = [  # outputs where our extractor and the paper's script must agree
    "Reasoning... The answer is B.",
    "The answer is A. On reflection the PTT points elsewhere. The answer is D",      # last match wins
    "The answer is $\\boxed{C}$",                                                   # boxed form
    "So: The answer is [B].",                                                       # bracketed form
    "the answer is c",                                                              # lower case
    "THE ANSWER IS D",
    "The answer is b, because the enzyme...",
    "I cannot decide between the options.",                                         # no answer
    "The answer is\nunclear",
    "",
]


@pytest.mark.parametrize("text", AGREED)
def test_extractor_agrees_with_the_papers_script(text):
    assert extract_answer(text, ABCD) == paper_extract(text)


@pytest.mark.parametrize("text, expected", [
    ("The answer is E", None),                       # a letter outside the options is rejected ...
    ("The answer is C. No wait: The answer is F", "C"),   # ... so the last valid statement stands
    ("The answer is a rare metabolic disease", None),     # the article 'a' is not the letter A
    ("The answer is option B", None),                 # 'o' of 'option' is not a letter
    ("The answer is (B)", "B"),
    ("The answer is **C**", "C"),
    ("\\boxed{A}", "A"),
    ("The answer is [C]. Double-check: \\boxed{D}", "D"),   # last match over every form
])
def test_extractor_rules_beyond_the_papers_script(text, expected):
    assert extract_answer(text, ABCD) == expected


def test_ten_option_letters():
    assert extract_answer("The answer is J", list("ABCDEFGHIJ")) == "J"
    assert extract_answer("The answer is J", ABCD) is None


# ---- seeds ------------------------------------------------------------------------------------

def test_sample_seeds_depend_only_on_seed_question_and_sample():
    assert sample_seed(0, "medqa-1", 0) == sample_seed(0, "medqa-1", 0)
    seeds = {sample_seed(s, q, k) for s in (0, 1) for q in ("medqa-1", "medqa-2") for k in range(4)}
    assert len(seeds) == 16 and all(0 <= s < 2 ** 63 for s in seeds)


# ---- constrained re-decode --------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny():
    from medssr_nemo.models import make_tiny_model
    from medssr_nemo.rollout.inprocess import InProcessEngine

    model, tokenizer = make_tiny_model("llama", seed=3)
    return InProcessEngine(model, tokenizer, max_batch_size=16), tokenizer


def test_recovery_uses_the_letter_tokens_the_model_would_write(tiny):
    _, tokenizer = tiny
    tokens = recovery_tokens(tokenizer, list("ABCDEFGHIJ"))
    # "\nThe answer is" then the merged " A" token: exactly how the tokenizer splits the phrase
    for letter in "ABCDEFGHIJ":
        full = tokenizer.encode(RECOVERY_SUFFIX + letter, add_special_tokens=False)
        assert full == [*tokens.suffix_ids, next(t for t, l in tokens.letter_of_token.items() if l == letter)]
    assert len(tokens.allowed_ids(ABCD)) == 4
    assert tokenizer.decode(list(tokens.suffix_ids)) + " " == RECOVERY_SUFFIX


def test_recovery_prompt_drops_the_stop_token_and_appends_the_suffix():
    assert recovery_prompt([1, 2], [7, 8, 2], [50, 51], stopped=True) == [1, 2, 7, 8, 50, 51]
    assert recovery_prompt([1, 2], [7, 8], [50, 51], stopped=False) == [1, 2, 7, 8, 50, 51]


def _records(n_options_cycle=(2, 3, 4, 5, 10), count=20):
    letters = "ABCDEFGHIJ"
    out = []
    for i in range(count):
        n = n_options_cycle[i % len(n_options_cycle)]
        out.append(QuestionRecord(id=f"q{i}", question=f"Question number {i} about enzyme {i * 7}?",
                                  options=[f"option {j} of {i}" for j in range(n)], gold=letters[i % n]))
    return out


def test_recovery_always_yields_an_allowed_letter(tiny):
    """A random tiny model never states an answer, so every sample goes through the re-decode;
    each must come back with one of its own question's letters (2, 3, 4, 5 or 10 options)."""
    engine, tokenizer = tiny
    protocol = EvalProtocol(max_new_tokens=4, num_samples=1)
    records = _records(count=10)
    items = [WorkItem("toy", r, tuple(encode_prompt(r, tokenizer, "chat")), 0, sample_seed(0, r.id, 0))
             for r in records]
    rows = answer_items(engine, items, protocol, recovery_tokens(tokenizer, list("ABCDEFGHIJ")))
    assert len(rows) == len(items)
    for item, row in zip(items, rows):
        assert row["free_answer"] is None and row["recovered"]
        assert row["answer"] in item.record.letters
        assert row["correct"] == (row["answer"] == item.record.gold)


def test_recovery_follows_the_models_preference_among_allowed_letters(tiny):
    """The re-decode is greedy over the allowed letters: it must pick the allowed letter token
    with the highest logit after prompt + completion + suffix (checked with a full forward)."""
    import torch

    engine, tokenizer = tiny
    record = _records(count=1)[0]
    prompt = encode_prompt(record, tokenizer, "chat")
    completion = Completion(token_ids=[300, 301], text="xy", logprobs=[0.0, 0.0], finish_reason="length",
                            weight_version=0)
    tokens = recovery_tokens(tokenizer, record.letters)
    item = WorkItem("toy", record, tuple(prompt), 0, 1)
    letter = recover_letters(engine, [item], [completion], [0], tokens)[0]
    ids = torch.tensor([recovery_prompt(prompt, completion.token_ids, tokens.suffix_ids, stopped=False)])
    with torch.no_grad():
        logits = engine.model(ids).logits[0, -1]
    allowed = tokens.allowed_ids(record.letters)
    best = max(allowed, key=lambda t: float(logits[t]))
    assert letter == tokens.letter_of_token[best]


def test_an_engine_that_ignores_allowed_ids_is_an_error():
    class Careless:
        def generate(self, prompts, sampling, seeds):
            return [Completion([999], "zz", [0.0], "length", 0) for _ in prompts]

    from medssr_nemo.eval.protocol import RecoveryTokens

    record = _records(count=1)[0]
    tokens = RecoveryTokens((5,), {10: "A", 11: "B"})
    completion = Completion([1], "x", [0.0], "length", 0)
    with pytest.raises(RuntimeError, match="ignored allowed_token_ids"):
        recover_letters(Careless(), [WorkItem("toy", record, (1,), 0, 0)], [completion], [0], tokens)


# ---- accuracy ---------------------------------------------------------------------------------

def _row(qid, sample, correct, free="A", recovered=False):
    return {"id": qid, "sample": sample, "correct": correct, "free_answer": free, "recovered": recovered,
            "answer": free or ("B" if recovered else None), "follows_format": free is not None,
            "finish_reason": "stop"}


def test_accuracy_is_the_mean_and_population_std_over_samples():
    # 4 questions x 3 samples; per-sample accuracies 75 %, 50 %, 25 % (hand-worked)
    table = {0: [1, 1, 1, 0], 1: [1, 0, 1, 0], 2: [0, 0, 1, 0]}
    rows = [_row(f"q{q}", s, bool(table[s][q])) for s in table for q in range(4)]
    rows[0]["free_answer"], rows[0]["recovered"] = None, True
    rows[1]["free_answer"], rows[1]["answer"] = None, None
    metrics = benchmark_metrics(rows, 3)
    assert metrics["accuracy_pct_per_sample"] == [75.0, 50.0, 25.0]
    assert metrics["accuracy_pct_mean"] == pytest.approx(50.0)
    assert metrics["accuracy_pct_std"] == pytest.approx(float(np.std([75.0, 50.0, 25.0])))   # 20.41
    assert (metrics["invalid_answers"], metrics["recovered"], metrics["unanswered"]) == (2, 1, 1)
    assert metrics["num_questions"] == 4 and metrics["num_generations"] == 12


def test_summary_has_the_macro_average_and_a_rare_column():
    per = {"medqa": {"accuracy_pct_mean": 40.0}, "nejm": {"accuracy_pct_mean": 20.0},
           "rarebench": {"accuracy_pct_mean": 30.0}, "raredis": {"accuracy_pct_mean": 50.0}}
    summary = summarize(per, {"rarebench": True, "raredis": True})
    assert summary["macro_accuracy_pct"] == pytest.approx(35.0)
    assert summary["rare_accuracy_pct"] == pytest.approx(40.0)
    assert summarize({"medqa": {"accuracy_pct_mean": 40.0}}, {})["rare_accuracy_pct"] is None
