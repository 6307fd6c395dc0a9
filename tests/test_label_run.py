"""``medssr label`` end to end: sampling through the real in-process engine, the constrained
re-decode, voting, outputs, and resuming after a kill."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from medssr_nemo import registry
from medssr_nemo.cli.label import main as label_main
from medssr_nemo.config import load_config
from medssr_nemo.data.eval_files import paper_eval_path, read_paper_eval_file
from medssr_nemo.labelling.from_config import label
from medssr_nemo.labelling.run import LabelJob, LabelSettings
from medssr_nemo.labelling.samples_log import SamplesLog, SamplesLogError
from medssr_nemo.labelling.vote import VoteRule
from medssr_nemo.models import make_tiny_model
from medssr_nemo.records import read_records, write_records


def _questions():
    """Real questions with 4, 3 and 5 options (any records work: these only feed the policy)."""
    return (read_paper_eval_file(paper_eval_path("medmcqa"))[:2] + read_paper_eval_file(paper_eval_path("pubmedqa"))[:1]
            + read_paper_eval_file(paper_eval_path("medbullets"))[:1])


@pytest.fixture(scope="module")
def tiny():
    model, tokenizer = make_tiny_model("llama", seed=0)
    cfg = load_config("base", ["rollout.batch_size=16"])
    return registry.get("rollout_engine", "inprocess")(cfg.rollout, model=model, tokenizer=tokenizer), tokenizer


@pytest.fixture(scope="module")
def labelled_run(tiny, tmp_path_factory):
    engine, tokenizer = tiny
    out = tmp_path_factory.mktemp("label")
    write_records(_questions(), out / "questions.jsonl")
    cfg = load_config("base", [f"output_dir={out}", f"label.input={out / 'questions.jsonl'}", "label.num_samples=3",
                               "rollout.max_new_tokens=6", "rollout.batch_size=6", "label.min_agreement=0.5",
                               "label.tie_rule=lowest_letter"])
    assert label(cfg, engine=engine, tokenizer=tokenizer, progress=False) == 0
    return cfg, out


def test_labelling_runs_end_to_end_with_the_inprocess_engine(labelled_run):
    cfg, out = labelled_run
    questions = {r.id: r for r in _questions()}
    votes = [json.loads(line) for line in (out / "pseudo_labels.votes.jsonl").read_text().splitlines()]
    card = json.loads((out / "pseudo_labels.card.json").read_text())
    labelled = read_records(out / "pseudo_labels.jsonl")
    assert [v["id"] for v in votes] == list(questions)
    for vote in votes:
        letters = questions[vote["id"]].letters
        # the re-decode gives every sample an answer, and only among the question's own letters
        assert len(vote["answers"]) == 3 and set(vote["answers"]) <= set(letters)
        assert sum(vote["vote_counts"].values()) == 3
        assert vote["agreement"] == max(vote["vote_counts"].values()) / 3
        assert vote["kept"] == (vote["agreement"] >= 0.5)
    assert [r.id for r in labelled] == [v["id"] for v in votes if v["kept"]]
    for record in labelled:
        vote = next(v for v in votes if v["id"] == record.id)
        assert (record.label, record.label_source, record.agreement, record.vote_counts) == \
               (vote["label"], "pseudo", vote["agreement"], vote["vote_counts"])
        assert record.gold == questions[record.id].gold and record.question == questions[record.id].question
    report = card["report"]
    assert report["questions"] == 4 and report["labelled"] == len(labelled)
    assert report["samples"]["total"] == 12 and report["samples"]["answered"] == 12
    assert sum(report["agreement_histogram"].values()) == 4
    kept_with_gold = [v for v in votes if v["kept"]]
    assert report["accuracy_vs_gold"]["labelled"]["correct"] == sum(v["label"] == v["gold"] for v in kept_with_gold)
    assert card["identity"]["settings"]["temperature"] == cfg.rollout.temperature   # label.* null -> rollout.*


def test_a_finished_run_is_not_redone_and_a_new_vote_rule_does_not_resample(labelled_run, capsys):
    cfg, out = labelled_run
    samples_before = (out / "pseudo_labels.samples.jsonl").read_bytes()
    # engine=None: any attempt to sample would have to load model.path, which this run must not do
    assert label(cfg, engine=None, progress=False) == 0
    assert "up to date" in capsys.readouterr().out
    revote = load_config("base", [f"output_dir={out}", f"label.input={cfg.label.input}", "label.num_samples=3",
                                  "rollout.max_new_tokens=6", "rollout.batch_size=6", "label.min_agreement=0.0",
                                  "label.below_min_agreement=keep", "label.tie_rule=lowest_letter"])
    assert label(revote, engine=None, progress=False) == 0
    assert (out / "pseudo_labels.samples.jsonl").read_bytes() == samples_before
    assert len(read_records(out / "pseudo_labels.jsonl")) == 4      # tau 0 keeps every question
    assert json.loads((out / "pseudo_labels.card.json").read_text())["vote_rule"]["min_agreement"] == 0.0


def test_label_without_input_is_a_clear_error(capsys):
    assert label_main(["output_dir=/nonexistent"]) == 1
    assert "label.input is not set" in capsys.readouterr().err


def test_a_malformed_input_row_is_an_error_naming_file_and_line(tmp_path, capsys):
    bad = tmp_path / "questions.jsonl"
    bad.write_text('{"id": "q1", "question": "Q?", "options": ["a", "b"]}\n{"id": "q2", "question": "Q?", "options": ["a"]}\n')
    assert label_main([f"output_dir={tmp_path}", f"label.input={bad}"]) == 1
    assert f"{bad}:2: record q2: needs 2..26 options, got 1" in capsys.readouterr().err


def test_samples_log_refuses_other_settings_and_cuts_a_torn_line(tmp_path):
    path = tmp_path / "s.jsonl"
    log = SamplesLog(path, {"settings": {"temperature": 1.0}})
    log.append([{"id": "q1", "answers": ["A"]}])
    with open(path, "a") as handle:
        handle.write('{"id": "q2", "answ')          # what a kill during a write leaves behind
    again = SamplesLog(path, {"settings": {"temperature": 1.0}})
    assert list(again.entries) == ["q1"]
    assert path.read_text().endswith('"answers": ["A"], "id": "q1"}\n')
    with pytest.raises(SamplesLogError, match=r"settings.temperature: 1.0 in the log, 0.6 now"):
        SamplesLog(path, {"settings": {"temperature": 0.6}})


_KILLED_RUN = textwrap.dedent("""
    import os, signal, sys
    from medssr_nemo import registry
    from medssr_nemo.config import load_config
    from medssr_nemo.labelling.run import LabelJob, LabelSettings
    from medssr_nemo.labelling.vote import VoteRule
    from medssr_nemo.models import make_tiny_model
    from medssr_nemo.records import read_records

    model, tokenizer = make_tiny_model("llama", seed=0)
    engine = registry.get("rollout_engine", "inprocess")(load_config("base").rollout, model=model, tokenizer=tokenizer)
    calls = 0
    real_generate = engine.generate
    def generate(*args, **kwargs):
        global calls
        calls += 1
        if calls == 5:   # chunk 3's sampling call: questions 1 and 2 are in the log by now
            os.kill(os.getpid(), signal.SIGKILL)
        return real_generate(*args, **kwargs)
    engine.generate = generate
    out = sys.argv[1]
    job = LabelJob(read_records(out + "/questions.jsonl"), LabelSettings.build(**SETTINGS), VoteRule(**RULE), out, model_id="tiny")
    job.run(engine, tokenizer, questions_per_chunk=1, progress=False)
""")
SETTINGS = dict(num_samples=3, max_new_tokens=6, temperature=1.0, seed=5)
RULE = dict(min_agreement=0.5, tie_rule="random", seed=5)


def test_kill_and_resume_gives_the_output_of_an_uninterrupted_run(tiny, tmp_path):
    engine, tokenizer = tiny
    questions = _questions()
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    for directory in (reference, killed):
        directory.mkdir()
        write_records(questions, directory / "questions.jsonl")
    # uninterrupted, all four questions in one engine call
    LabelJob(questions, LabelSettings.build(**SETTINGS), VoteRule(**RULE), reference, model_id="tiny").run(
        engine, tokenizer, questions_per_chunk=4, progress=False)
    # a separate process labels one question per call and is SIGKILLed in the middle
    script = _KILLED_RUN.replace("SETTINGS", repr(SETTINGS)).replace("RULE", repr(RULE))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    proc = subprocess.run([sys.executable, "-c", script, str(killed)], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert not (killed / "pseudo_labels.jsonl").exists()
    partial = (killed / "pseudo_labels.samples.jsonl").read_text().splitlines()
    assert len(partial) == 1 + 2                     # header + the two finished questions
    # resume here, in this process, one question per call again
    job = LabelJob(questions, LabelSettings.build(**SETTINGS), VoteRule(**RULE), killed, model_id="tiny")
    assert [r.id for r in job.pending(job.open_log())] == [q.id for q in questions[2:]]
    job.run(engine, tokenizer, questions_per_chunk=1, progress=False)
    for name in ("pseudo_labels.jsonl", "pseudo_labels.votes.jsonl"):
        assert (killed / name).read_bytes() == (reference / name).read_bytes()
    resumed_log = SamplesLog(killed / "pseudo_labels.samples.jsonl", job.identity).entries
    reference_log = SamplesLog(reference / "pseudo_labels.samples.jsonl", job.identity).entries
    assert resumed_log == reference_log              # same tokens sample by sample (completion digests)
    assert len({d for e in reference_log.values() for d in e["completion_sha1"]}) > 1


@pytest.mark.slow   # about 3 CPU-minutes (model load, 12 x 48 tokens, 12 re-decodes): over a minute on 2 cores
def test_pseudo_labelling_with_the_embedded_smollm2_policy_runs_end_to_end_on_cpu(tmp_path, capsys):
    """The real default policy, 3 short MedMCQA questions x 4 samples x 48 new tokens, via the command
    (short stems keep the prefill, and so the test, small)."""
    questions = read_paper_eval_file(paper_eval_path("medmcqa"))[:3]
    write_records(questions, tmp_path / "questions.jsonl")
    argv = [f"output_dir={tmp_path}", f"label.input={tmp_path / 'questions.jsonl'}", "label.num_samples=4",
            "rollout.max_new_tokens=48", "rollout.temperature=0.6", "rollout.top_p=0.95", "rollout.top_k=20",
            "label.min_agreement=0.5"]
    assert label_main(argv) == 0
    assert "labelled" in capsys.readouterr().out
    card = json.loads((tmp_path / "pseudo_labels.card.json").read_text())
    assert card["identity"]["model"] == "embedded:smollm2-135m-instruct"
    report = card["report"]
    assert report["questions"] == 3 and report["samples"]["total"] == 12
    # SmolLM2 rarely states an answer itself (NOTES.md); the re-decode still gets a vote from every sample
    assert report["samples"]["answered"] == 12
    assert report["samples"]["free_answer"] + report["samples"]["recovered"] == 12
    votes = [json.loads(line) for line in (tmp_path / "pseudo_labels.votes.jsonl").read_text().splitlines()]
    for vote, question in zip(votes, questions):
        assert set(vote["answers"]) <= set(question.letters)
        assert vote["kept"] == (vote["agreement"] >= 0.5 and not vote["tied"])
    labelled = read_records(tmp_path / "pseudo_labels.jsonl")
    assert len(labelled) == report["labelled"] == sum(v["kept"] for v in votes)
    assert all(r.label_source == "pseudo" and r.label in r.letters for r in labelled)


class _ScriptedEngine:
    """Answers each (question, sample) with a fixed text, looked up by the sample's seed (the
    seed is ``sample_seed(seed, question id, k)``, so the script does not depend on batching)."""

    def __init__(self, by_seed: dict[int, str]) -> None:
        self.by_seed = by_seed
        self.calls = 0

    def generate(self, prompts, sampling, seeds):
        from medssr_nemo.rollout.interfaces import Completion
        self.calls += 1
        return [Completion([1], self.by_seed[s], [0.0], "stop", 0) for s in seeds]


def test_an_answer_that_is_not_one_of_the_options_is_no_vote(tmp_path):
    """Under the paper's reader "The answer is I think B" is answer I; on a four-option question
    that is no vote (our labelling choice): a question with only such answers is dropped, one
    with a majority of real letters is labelled, and the card counts the out-of-range answers."""
    from medssr_nemo.eval.protocol import sample_seed
    from medssr_nemo.models.tiny import make_tiny_tokenizer
    from medssr_nemo.records import QuestionRecord

    options = ["alpha", "beta", "gamma", "delta"]
    only_out = QuestionRecord(id="only_out", question="Which enzyme?", options=options, gold="B")
    mixed = QuestionRecord(id="mixed", question="Which vessel?", options=options, gold="C")
    script = {sample_seed(0, "only_out", k): "The answer is I think B." for k in range(3)}
    script |= {sample_seed(0, "mixed", 0): "The answer is C.", sample_seed(0, "mixed", 1): "The answer is C.",
               sample_seed(0, "mixed", 2): "The answer is I think C."}
    job = LabelJob([only_out, mixed], LabelSettings.build(num_samples=3, seed=0, answer_extraction="paper"),
                   VoteRule(min_agreement=0.5), tmp_path, model_id="tiny")
    card = job.run(_ScriptedEngine(script), make_tiny_tokenizer("llama3"), progress=False)
    votes = {v["id"]: v for v in map(json.loads, (tmp_path / "pseudo_labels.votes.jsonl").read_text().splitlines())}
    assert votes["only_out"]["answers"] == ["I", "I", "I"]            # what the reader read, kept in the log
    assert (votes["only_out"]["kept"], votes["only_out"]["vote_counts"]) == (False, {})
    assert votes["only_out"]["dropped_because"] == "no votes"
    assert (votes["mixed"]["label"], votes["mixed"]["vote_counts"]) == ("C", {"C": 2})
    assert votes["mixed"]["agreement"] == 2 / 3                       # the out-of-range sample did not agree
    [labelled] = read_records(tmp_path / "pseudo_labels.jsonl")
    assert (labelled.id, labelled.label, labelled.meta["pseudo_label"]["answers_not_an_option"]) == ("mixed", "C", 1)
    assert card["report"]["samples"]["answers_not_an_option"] == 4
    assert card["report"]["dropped"] == {"no votes": 1}
