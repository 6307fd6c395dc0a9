"""The llm synthesizer: the strict output parser, the OpenAI-compatible HTTP generator against a
local server (canned, malformed, 429/500 replies, timeouts), a whole synthesis run through that
server, and the rollout-engine generator on a tiny real model."""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

import pytest

from medssr_nemo.config import load_config
from medssr_nemo.records import QuestionRecord, read_records
from medssr_nemo.synthesis.generators import HTTPChatGenerator, RateLimiter
from medssr_nemo.synthesis.llm_format import ParseError, build_prompt, parse_question

GOOD = """Sure, here is a new question.
Question: A 6-year-old boy has coarse facial features,
hepatosplenomegaly and corneal clouding. Which enzyme is deficient?
A. Alpha-L-iduronidase
B. Iduronate-2-sulfatase
C. Beta-galactosidase
D. Hexosaminidase A
E. Glucocerebrosidase
Answer: A
Explanation: Hurler syndrome."""


# ---- parser --------------------------------------------------------------------------------------

def test_parser_reads_stem_options_and_answer():
    parsed = parse_question(GOOD, num_options=5)
    assert parsed.stem.startswith("A 6-year-old boy") and parsed.stem.endswith("deficient?")
    assert parsed.options[0] == "Alpha-L-iduronidase" and len(parsed.options) == 5
    assert parsed.answer == "A"
    assert parse_question("**Question:** Which?\nA) x\nB) y\n**Answer:** (b)").answer == "B"


@pytest.mark.parametrize("text, reason", [
    ("", "empty output"),
    ("I cannot help with that.", "no 'Question:' line"),
    ("Question: Which?\nAnswer: A", "no option lines"),
    ("Question: Which?\nA. x\nC. y\nAnswer: A", "options not lettered A, B, C, ... in order"),
    ("Question: Which?\nA. x\nB. y\nC. z", "no 'Answer: X' line"),
    ("Question: Which?\nA. x\nB. y\nAnswer: D", "answer letter not among the options"),
    ("Question: Which?\nA. x\nB. y\nAnswer: A\nQuestion: again?", "more than one question"),
    ("Question:\nA. x\nB. y\nAnswer: A", "empty question stem"),
    ("Question: Which?\nA. x\nAnswer: A", "only one option"),
])
def test_parser_rejects_with_a_reason(text, reason):
    with pytest.raises(ParseError) as err:
        parse_question(text)
    assert err.value.reason == reason


def test_parser_checks_the_requested_option_count():
    with pytest.raises(ParseError, match="asked for 4, got 5"):
        parse_question(GOOD, num_options=4)


def test_prompt_carries_knowledge_only_for_rare_slots():
    seed = QuestionRecord(id="s1", question="Which vitamin deficiency causes scurvy?",
                          options=["A", "B", "C", "D"], gold="C")
    rare = build_prompt(seed, 5, "hard", "gene", "Disease: Marfan syndrome\nGenes: FBN1")
    common = build_prompt(seed, 5, "easy", None, None)
    assert "Genes: FBN1" in rare[1]["content"] and "pathogenic variants" in rare[1]["content"]
    assert "Knowledge" not in common[1]["content"] and "scurvy" in common[1]["content"]
    assert "A to E" in common[1]["content"]


# ---- a local OpenAI-compatible server ---------------------------------------------------------

class ChatServer:
    """Serves ``POST /v1/chat/completions``; ``reply(request, n)`` -> (status, headers, body, delay_s)."""

    def __init__(self, reply: Callable[[dict, int], tuple[int, dict, bytes, float]]) -> None:
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's naming)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with lock:
                    outer.requests.append(body)
                    outer.headers.append(dict(self.headers))
                    n = len(outer.requests)
                status, headers, payload, delay = reply(body, n)
                if delay:
                    threading.Event().wait(delay)
                try:
                    self.send_response(status)
                    for key, value in headers.items():
                        self.send_header(key, value)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def completion(text: str) -> bytes:
    return json.dumps({"id": "x", "object": "chat.completion",
                       "choices": [{"index": 0, "message": {"role": "assistant", "content": text}}]}).encode()


@pytest.fixture
def server_factory():
    servers = []

    def make(reply):
        servers.append(ChatServer(reply))
        return servers[-1]
    yield make
    for server in servers:
        server.close()


def _generator(url, **kw):
    return HTTPChatGenerator(url, "test-model", **{"backoff_s": 0.0, "concurrency": 1, **kw})


def test_http_generator_retries_429_and_500_then_succeeds(server_factory, monkeypatch):
    script = [(429, {"Retry-After": "0"}, b'{"error": "rate limited"}'), (500, {}, b"oops"), (200, {}, completion(GOOD))]
    server = server_factory(lambda body, n: (*script[min(n, 3) - 1], 0.0))
    monkeypatch.setenv("TEST_SYNTH_KEY", "sk-test")
    waits: list[float] = []
    generator = _generator(server.base_url, api_key_env="TEST_SYNTH_KEY", backoff_s=0.5, sleep=waits.append)
    (result,) = generator.generate([[{"role": "user", "content": "hi"}]], [42])
    assert result.text == GOOD and generator.retries == 2
    assert waits == [0.0, 1.0]        # Retry-After: 0 wins; then backoff 0.5 * 2**1
    assert len(server.requests) == 3
    assert server.requests[0]["model"] == "test-model" and server.requests[0]["seed"] == 42
    assert server.headers[0]["Authorization"] == "Bearer sk-test"


def test_http_generator_gives_up_with_a_reason(server_factory):
    server = server_factory(lambda body, n: (503, {}, b"down", 0.0))
    (result,) = _generator(server.base_url, max_retries=2).generate([[{"role": "user", "content": "x"}]], [1])
    assert result.text is None and result.error == "http 503" and "after 3 tries" in result.detail
    assert len(server.requests) == 3


def test_http_generator_does_not_retry_client_errors_or_malformed_bodies(server_factory):
    bad_request = server_factory(lambda body, n: (400, {}, b'{"error": "bad model"}', 0.0))
    (result,) = _generator(bad_request.base_url).generate([[{"role": "user", "content": "x"}]], [1])
    assert (result.error, len(bad_request.requests)) == ("http 400", 1)
    for payload, detail in [(b"<html>not json</html>", "not JSON"), (b'{"choices": []}', "no choices[0]")]:
        server = server_factory(lambda body, n, p=payload: (200, {}, p, 0.0))
        (result,) = _generator(server.base_url).generate([[{"role": "user", "content": "x"}]], [1])
        assert result.error == "malformed response" and detail in result.detail
        assert len(server.requests) == 1


def test_http_generator_times_out(server_factory):
    server = server_factory(lambda body, n: (200, {}, completion(GOOD), 1.0))
    (result,) = _generator(server.base_url, timeout_s=0.2, max_retries=1).generate([[{"role": "user", "content": "x"}]], [1])
    assert result.error == "timeout" and len(server.requests) == 2


def test_rate_limiter_spaces_request_starts():
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds):
        slept.append(seconds)
        now[0] += seconds
    limiter = RateLimiter(4.0, clock=lambda: now[0], sleep=sleep)
    for _ in range(3):
        limiter.wait()
    assert slept == [0.25, 0.25]


def test_generator_config_errors_name_the_key():
    with pytest.raises(ValueError, match="synthesis.generator.model is empty"):
        HTTPChatGenerator("http://127.0.0.1:1/v1", "")
    with pytest.raises(ValueError, match="base_url"):
        HTTPChatGenerator("127.0.0.1:1/v1", "m")


# ---- a whole llm synthesis run through the local server --------------------------------------

def _scripted_reply(body: dict, n: int, keys: dict | None = None) -> tuple[int, dict, bytes, float]:
    """Deterministic per generation seed. Grounded (rare) prompts: most replies keep the given
    options and key; some pick another answer (key not verified) or write the forbidden disease
    name into the stem (leakage). Seed rewrites: most are new, some copy the seed verbatim. Some
    replies are malformed text or a 500. Blind-solve prompts answer from ``keys`` (the questions
    written so far), wrongly for every third question."""
    seed, prompt = body["seed"], body["messages"][1]["content"]
    if body["messages"][0]["content"].startswith("You are a physician"):
        stem = prompt.split("\n", 1)[0]
        key = (keys or {}).get(stem, "A")
        wrong = "ABCDE"[("ABCDE".index(key) + 1) % 5]
        return 200, {}, completion(f"<think>hmm</think>Reasoning... Answer: {wrong if hash(stem) % 3 == 0 else key}"), 0.0
    if seed % 11 == 0:
        return 500, {}, b"internal error", 0.0
    if seed % 7 == 0:
        return 200, {}, completion("As an AI I would rather not."), 0.0
    if seed % 5 == 0:
        return 200, {}, completion("Question: Too few?\nA. one\nB. two\nC. three\nAnswer: B"), 0.0
    if "Options (use exactly these texts" in prompt:
        options = [line[2:] for line in prompt.split("in any order):\n", 1)[1].split("\n\n", 1)[0].splitlines()]
        key = prompt.split("The correct answer is: ", 1)[1].split("\n", 1)[0]
        draft = prompt.split("Draft question:\n", 1)[1].split("\n\n", 1)[0]
        letter = "ABCDE"[options.index(key)]
        if seed % 13 == 0:
            letter = "ABCDE"[(options.index(key) + 1) % 5]
        stem = f"<think>plan the rewrite</think>Question: In this case (variant {seed}), {draft}"
        if seed % 17 == 0 and "Do NOT write any of these" in prompt:
            forbidden = prompt.split("Do NOT write any of these in the question: ", 1)[1].split(";")[0].strip(" .\n")
            stem += f" The family mentions {forbidden}."
        text = stem + "\n" + "\n".join(f"{'ABCDE'[i]}. {o}" for i, o in enumerate(options)) + f"\nAnswer: {letter}"
        if keys is not None:
            keys[stem.split("Question: ", 1)[1]] = letter
        return 200, {}, completion(text), 0.0
    seed_stem = prompt.split("Seed question:\n", 1)[1].split("\n", 1)[0]
    if seed % 3 == 0:
        return 200, {}, completion(f"Question: {seed_stem}\n" + "\n".join(f"{l}. opt {l}" for l in "ABCDE") + "\nAnswer: C"), 0.0
    text = (f"Question: Considering a fresh clinical angle number {seed}, which statement is correct?\n"
            + "\n".join(f"{letter}. Statement {letter} {seed}" for letter in "ABCDE") + "\nAnswer: C")
    return 200, {}, completion(text), 0.0


@pytest.fixture(scope="module")
def hpo():
    from medssr_nemo.knowledge.hpo import HPOKnowledge

    return HPOKnowledge.load()


def _llm_cfg(tmp_path, server, *extra):
    return load_config("base", [
        f"output_dir={tmp_path}", "synthesis.synthesizer=llm", "synthesis.alpha=0.5", "synthesis.num_questions=40",
        "synthesis.seed=1", "synthesis.show_progress=false", "synthesis.filters.decontaminate=false",
        f"synthesis.generator.base_url={server.base_url}", "synthesis.generator.model=test-model",
        "synthesis.generator.backoff_s=0", "synthesis.generator.max_retries=0", "synthesis.chunk_size=20", *extra])


def test_llm_synthesis_is_grounded_in_merged_profiles_and_verified(tmp_path, server_factory, hpo, shared_data):
    from medssr_nemo.data.real import read_mmlu_dir
    from medssr_nemo.synthesis.from_config import run_synthesis

    server = server_factory(_scripted_reply)
    seeds = read_mmlu_dir(shared_data / "train" / "mmlu_medical")[:60]
    out = run_synthesis(_llm_cfg(tmp_path, server,
                                 "+synthesis.generator.extra_body.chat_template_kwargs={enable_thinking: false}"), knowledge=hpo, seeds=seeds)
    records = read_records(out.records_path)
    failures = out.card["generation_failures"]["counts"]
    assert failures["unparseable: no 'Question:' line"] > 0
    assert failures["unparseable: wrong number of options"] > 0
    assert failures["generator: http 500"] > 0
    assert failures["key not verified"] > 0 and failures["copy of the seed"] > 0
    assert len(records) + out.card["counts"]["given_up"] == 40
    rare = [r for r in records if r.rare]
    assert rare and all(r.meta["key_source"] == "knowledge base" and r.meta["disease_id"] in r.knowledge_ids
                        for r in rare)
    assert all("<think>" not in r.question for r in records)
    common = [r for r in records if not r.rare]
    assert common and all(r.knowledge_ids[0] in {s.id for s in seeds} and r.gold == "C" for r in common)
    assert all(r.source == "llm" and r.difficulty for r in records)
    # every request carried the extra body options
    assert all(b.get("chat_template_kwargs") == {"enable_thinking": False} for b in server.requests)
    # rare prompts carry the fact sheet and the knowledge base's options; diagnosis prompts hide the name
    rare_prompts = [b["messages"][1]["content"] for b in server.requests if "Facts:" in b["messages"][1]["content"]]
    assert rare_prompts and all("Options (use exactly these texts" in p for p in rare_prompts)
    assert any("Do NOT write any of these" in p and "Disease:" not in p for p in rare_prompts)
    # the card's audit checks the llm-made set too: the kept keys are the knowledge base's
    audit = out.card["audit"]
    assert audit["checkable"] == len(rare) and audit["overall"]["contradicted"] == 0
    assert audit["overall"]["leakage"] == 0
    # the card says how the profiles it was grounded in were merged, as the kg synthesizer's does
    merge = out.card["inputs"]["synthesizer"]["merge"]
    assert merge["merged_groups"] > 0 and merge["profiles"] < merge["entries"] and merge["conflicts"] > 0


def test_blind_solve_drops_questions_a_second_model_answers_differently(tmp_path, server_factory, hpo, shared_data):
    from medssr_nemo.data.real import read_mmlu_dir
    from medssr_nemo.synthesis.from_config import run_synthesis

    keys: dict[str, str] = {}
    server = server_factory(lambda body, n: _scripted_reply(body, n, keys))
    seeds = read_mmlu_dir(shared_data / "train" / "mmlu_medical")[:60]
    out = run_synthesis(_llm_cfg(tmp_path, server, "synthesis.blind_solve=true", "synthesis.blind_solver_model=judge",
                                 "synthesis.alpha=1.0"), knowledge=hpo, seeds=seeds)
    assert out.card["generation_failures"]["counts"]["blind solve disagrees"] > 0
    judged = [b for b in server.requests if b["model"] == "judge"]
    assert judged and all(b["temperature"] == 0.0 for b in judged)
    records = read_records(out.records_path)
    assert records and all(r.meta.get("blind_solve") == "agrees" for r in records)


# ---- rollout-engine generator on a tiny real model --------------------------------------------

def _engine_run(tmp_path, hpo, shared_data, overrides, generator=None):
    from medssr_nemo.data.real import read_mmlu_dir
    from medssr_nemo.synthesis.from_config import run_synthesis

    seeds = read_mmlu_dir(shared_data / "train" / "mmlu_medical")[:10]
    cfg = load_config("base", [
        f"output_dir={tmp_path / 'out'}", "synthesis.synthesizer=llm", "synthesis.alpha=0.5",
        "synthesis.num_questions=4", "synthesis.max_attempts=1", "synthesis.show_progress=false",
        "synthesis.filters.decontaminate=false", "synthesis.generator.kind=rollout_engine",
        "synthesis.generator.max_new_tokens=8", *overrides])
    synthesizer = None
    if generator is not None:
        from medssr_nemo import registry

        synthesizer = registry.get("synthesizer", "llm")(cfg, knowledge=hpo, seeds=seeds, generator=generator)
    return run_synthesis(cfg, knowledge=hpo, seeds=seeds, synthesizer=synthesizer)


def _assert_all_unparseable(out):
    # random weights write no question: every slot is an explained drop, the run still finishes
    assert out.card["counts"]["written"] == 0 and out.card["counts"]["given_up"] == 4
    assert sum(out.card["generation_failures"]["counts"].values()) == 4
    assert all(reason.startswith("unparseable: ") for reason in out.card["generation_failures"]["counts"])
    assert out.card["inputs"]["synthesizer"]["generator"]["engine"] == "InProcessEngine"


def test_engine_generator_on_a_tiny_model_counts_unparseable_outputs(tmp_path, hpo, shared_data, tiny_llama):
    from medssr_nemo import registry
    from medssr_nemo.synthesis.generators import EngineGenerator

    model, tokenizer = tiny_llama
    engine = registry.get("rollout_engine", "inprocess")(load_config("base", []).rollout, model=model,
                                                         tokenizer=tokenizer)
    generator = EngineGenerator(engine, tokenizer, max_new_tokens=8)
    _assert_all_unparseable(_engine_run(tmp_path, hpo, shared_data, [], generator=generator))


@pytest.mark.slow
def test_engine_generator_built_from_config(tmp_path, hpo, shared_data):
    """The config path: generator.kind=rollout_engine loads generator.model and builds the engine."""
    from medssr_nemo.models import save_tiny_model

    model_dir = save_tiny_model(tmp_path / "tiny", "llama", seed=0)
    _assert_all_unparseable(_engine_run(tmp_path, hpo, shared_data, [f"synthesis.generator.model={model_dir}"]))


def test_llm_with_a_snippet_corpus_injects_retrieved_passages(tmp_path, server_factory, monkeypatch):
    from medssr_nemo.knowledge.corpus import CorpusKnowledge
    from medssr_nemo.synthesis.kg import KGSynthesizer
    from medssr_nemo.synthesis.from_config import run_synthesis

    monkeypatch.setenv("MEDSSR_CACHE", str(tmp_path / "cache"))
    corpus_path = tmp_path / "corpus.jsonl"
    corpus_path.write_text("\n".join(json.dumps(row) for row in [
        {"id": "sp-1", "title": "Scurvy", "content": "Scurvy is vitamin C deficiency: bleeding gums, perifollicular hemorrhage."},
        {"id": "sp-2", "title": "Beriberi", "content": "Beriberi is thiamine (vitamin B1) deficiency: neuropathy, heart failure."},
    ]) + "\n")
    corpus = CorpusKnowledge(corpus_path)
    seeds = [QuestionRecord(id=f"seed-{i}", question=f"Deficiency of which vitamin causes {name}?",
                            options=["Vitamin A", "Vitamin B1", "Vitamin C", "Vitamin D"], gold="C" if i == 0 else "B")
             for i, name in enumerate(["scurvy with bleeding gums", "beriberi with neuropathy"] * 5)]
    server = server_factory(lambda body, n: (200, {}, completion(
        f"Question: New question {body['seed']} about vitamins?\nA. one\nB. two\nC. three\nD. four\nAnswer: B"), 0.0))
    cfg = load_config("base", [
        f"output_dir={tmp_path / 'out'}", "synthesis.synthesizer=llm", "synthesis.alpha=1", "synthesis.num_questions=6",
        "synthesis.num_options=4", "synthesis.show_progress=false", "synthesis.filters.decontaminate=false",
        f"synthesis.generator.base_url={server.base_url}", "synthesis.generator.model=m"])
    out = run_synthesis(cfg, knowledge=corpus, seeds=seeds)
    records = read_records(out.records_path)
    assert len(records) == 6 and all(r.rare for r in records)
    assert all(set(r.knowledge_ids[1:]) <= {"sp-1", "sp-2"} and len(r.knowledge_ids) > 1 for r in records)
    assert all("Knowledge:" in b["messages"][1]["content"] for b in server.requests)
    with pytest.raises(ValueError, match="needs a knowledge source with disease profiles"):
        KGSynthesizer(corpus, seeds)
