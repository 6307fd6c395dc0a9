"""The evaluation protocol: paper defaults, answer extraction against the paper's own rules,
the constrained re-decode, seeds, and accuracy as mean/std over samples."""

from __future__ import annotations

import re

import numpy as np
import pytest

from medssr_nemo.answers import extract_answer
from medssr_nemo.config import load_config
from medssr_nemo.eval.answering import WorkItem, answer_items, redecode
from medssr_nemo.eval.metrics import benchmark_metrics, summarize
from medssr_nemo.eval.protocol import EvalProtocol, sample_seed
from medssr_nemo.eval.redecode import make_redecoder
from medssr_nemo.prompts import encode_prompt
from medssr_nemo.records import QuestionRecord
from medssr_nemo.rollout.interfaces import Completion

ABCD = list("ABCD")


def test_defaults_are_the_papers_protocol():
    cfg = load_config("base", [])
    protocol = EvalProtocol.from_config(cfg.eval, cfg.model.prompt_style)
    assert (protocol.temperature, protocol.top_p, protocol.top_k) == (0.6, 0.95, 20)
    assert (protocol.max_new_tokens, protocol.num_samples, protocol.recovery) == (2048, 4, True)
    assert protocol.prompt_style == "chat"          # from the model config (SmolLM2-Instruct)
    assert protocol.answer_extraction == "paper"
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


# ---- extraction: the paper's rules (the full battery is in test_answers.py) -------------------

def paper_extract(prediction: str) -> str | None:
    """The paper's rule as its evaluation script states it, as an independent reference:
    exact-case forms first (last match of the first form found), then any case."""
    for pattern in (r"The answer is ([A-Z])", r"The answer is \$\\boxed{([A-Z])}\$", r"The answer is \[([A-Z])\]"):
        matches = list(re.finditer(pattern, prediction.strip()))
        if matches:
            return matches[-1].group(1)
    matches = list(re.finditer(r"The answer is ([A-Z])", prediction.strip(), re.IGNORECASE))
    return matches[-1].group(1).upper() if matches else None


AGREED = [
    "Reasoning... The answer is B.",
    "The answer is A. On reflection the PTT points elsewhere. The answer is D",
    "The answer is $\\boxed{C}$",
    "So: The answer is [B].",
    "the answer is c",
    "THE ANSWER IS D",
    "The answer is b, because the enzyme...",
    "The answer is E",
    "The answer is Bacteria",
    "The answer is [B]. Then The answer is C",
    "I cannot decide between the options.",
    "The answer is\nunclear",
    "",
]


@pytest.mark.parametrize("text", AGREED)
def test_default_extractor_agrees_with_the_papers_script(text):
    assert extract_answer(text, ABCD) == paper_extract(text)


# ---- seeds ------------------------------------------------------------------------------------

def test_sample_seeds_depend_only_on_seed_question_and_sample():
    assert sample_seed(0, "medqa-1", 0) == sample_seed(0, "medqa-1", 0)
    seeds = {sample_seed(s, q, k) for s in (0, 1) for q in ("medqa-1", "medqa-2") for k in range(4)}
    assert len(seeds) == 16 and all(0 <= s < 2 ** 63 for s in seeds)


# ---- constrained re-decode (prompts and token ids: test_redecode.py) ---------------------------

@pytest.fixture(scope="module")
def tiny():
    from medssr_nemo.models import make_tiny_model
    from medssr_nemo.rollout.inprocess import InProcessEngine

    model, tokenizer = make_tiny_model("llama", seed=3)
    return InProcessEngine(model, tokenizer, max_batch_size=16), tokenizer


def _records(n_options_cycle=(2, 3, 4, 5, 10), count=20):
    letters = "ABCDEFGHIJ"
    out = []
    for i in range(count):
        n = n_options_cycle[i % len(n_options_cycle)]
        out.append(QuestionRecord(id=f"q{i}", question=f"Question number {i} about enzyme {i * 7}?",
                                  options=[f"option {j} of {i}" for j in range(n)], gold=letters[i % n]))
    return out


@pytest.mark.parametrize("model_type, new_tokens", [("qwen3", 1), ("llama", 2)])
def test_redecode_answers_are_the_benchmarks_letters_or_unknown(tiny, model_type, new_tokens):
    """A random tiny model never states an answer, so every sample is re-decoded; with one new
    token (Qwen family) each gives one of the benchmark's letters, with two (others) the output
    is a letter, a letter and '.', or two letters (still unknown), as in the paper's script."""
    engine, tokenizer = tiny
    protocol = EvalProtocol(max_new_tokens=4, num_samples=1, prompt_style="chat")
    records = _records(count=10)
    benchmark_letters = tuple("ABCDEFGHIJ")
    items = [WorkItem("toy", r, tuple(encode_prompt(r, tokenizer, "chat")), 0, sample_seed(0, r.id, 0), benchmark_letters)
             for r in records]
    redecoder = make_redecoder(tokenizer, "chat", "tiny", model_type)
    rows = answer_items(engine, items, protocol, redecoder)
    assert len(rows) == len(items)
    for item, row in zip(items, rows):
        assert row["free_answer"] is None
        text = row["redecode_text"].strip().rstrip(".").upper()
        assert len(tokenizer.encode(row["redecode_text"], add_special_tokens=False)) <= new_tokens
        assert row["answer"] == (text if text in benchmark_letters else None)
        assert row["recovered"] == (row["answer"] is not None)
        assert row["correct"] == (row["answer"] == item.record.gold)
    if new_tokens == 1:
        assert all(row["recovered"] for row in rows)


def test_redecode_follows_the_models_preference_among_allowed_letters(tiny):
    """The re-decode is greedy over the allowed letters: it must pick the allowed letter token
    with the highest logit after the re-decode prompt (checked with a full forward)."""
    import torch

    engine, tokenizer = tiny
    record = _records(count=1)[0]
    completion = Completion(token_ids=[300, 301], text="xy", logprobs=[0.0, 0.0], finish_reason="length",
                            weight_version=0)
    redecoder = make_redecoder(tokenizer, "chat", "Qwen3-tiny", None)
    item = WorkItem("toy", record, tuple(encode_prompt(record, tokenizer, "chat")), 0, 1)
    got = redecode(engine, [item], [completion], [0], redecoder)[0]
    ids = torch.tensor([redecoder.prompt_ids(record, "xy")])
    with torch.no_grad():
        logits = engine.model(ids).logits[0, -1]
    allowed = redecoder.allowed_ids(record.letters)
    best = max(allowed, key=lambda t: float(logits[t]))
    assert got.letter == tokenizer.decode([best])


def test_an_engine_that_ignores_allowed_ids_is_an_error():
    class Careless:
        def generate(self, prompts, sampling, seeds):
            return [Completion([999], "zz", [0.0], "length", 0) for _ in prompts]

    from medssr_nemo.models.tiny import make_tiny_tokenizer

    record = _records(count=1)[0]
    redecoder = make_redecoder(make_tiny_tokenizer("qwen3"), "base", "Qwen3-tiny", None)
    completion = Completion([1], "x", [0.0], "length", 0)
    with pytest.raises(RuntimeError, match="ignored allowed_token_ids"):
        redecode(Careless(), [WorkItem("toy", record, (1,), 0, 0)], [completion], [0], redecoder)


def test_an_out_of_range_answer_is_scored_wrong_and_not_redecoded():
    """The paper's rule: "The answer is E" on a four-option question is answer E, scored wrong,
    and it is an answer, so no re-decode is asked of the engine."""
    from medssr_nemo.models.tiny import make_tiny_tokenizer

    tokenizer = make_tiny_tokenizer("qwen3")

    class Scripted:
        """Says E; a re-decode (allowed ids set) would get the first allowed letter."""

        def __init__(self):
            self.calls = []

        def generate(self, prompts, sampling, seeds):
            self.calls.append(sampling)
            if sampling.allowed_token_ids:
                first = sampling.allowed_token_ids[0]
                return [Completion([first], tokenizer.decode([first]), [0.0], "length", 0) for _ in prompts]
            return [Completion([5], "Weighing the options, the answer is E.", [0.0], "stop", 0) for _ in prompts]

    record = QuestionRecord(id="q4", question="Which one?", options=["w", "x", "y", "z"], gold="B")
    engine = Scripted()
    item = WorkItem("toy", record, tuple(encode_prompt(record, tokenizer, "chat")), 0, 7, tuple("ABCDE"))
    [row] = answer_items(engine, [item], EvalProtocol(num_samples=1, prompt_style="chat"),
                         make_redecoder(tokenizer, "chat", "Qwen3-tiny", None), "Qwen3-tiny")
    assert (row["answer"], row["free_answer"], row["correct"]) == ("E", "E", False)
    assert row["redecode_text"] is None and row["recovered"] is False
    assert len(engine.calls) == 1                               # the generation only, no re-decode call


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
    assert (metrics["no_answer_before_redecode"], metrics["recovered_by_redecode"], metrics["unknown_after_redecode"]) == (2, 1, 1)
    assert metrics["num_questions"] == 4 and metrics["num_generations"] == 12


def test_summary_has_the_macro_average_and_a_rare_column():
    per = {"medqa": {"accuracy_pct_mean": 40.0}, "nejm": {"accuracy_pct_mean": 20.0},
           "rarebench": {"accuracy_pct_mean": 30.0}, "raredis": {"accuracy_pct_mean": 50.0}}
    summary = summarize(per, {"rarebench": True, "raredis": True})
    assert summary["macro_accuracy_pct"] == pytest.approx(35.0)
    assert summary["rare_accuracy_pct"] == pytest.approx(40.0)
    assert summarize({"medqa": {"accuracy_pct_mean": 40.0}}, {})["rare_accuracy_pct"] is None
