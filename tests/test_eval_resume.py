"""``medssr eval`` resumes after a kill at the (question, sample) level and then writes exactly
the files an uninterrupted run writes."""

from __future__ import annotations

import pytest

from medssr_nemo.config import load_config
from medssr_nemo.eval.runner import default_policy_loader, run_eval

from eval_loaders import watching_loader

FILES = ["generations.jsonl", "metrics.json", "protocol.json"]
BENCHMARKS = ["pubmedqa", "bioasq"]


class Killed(RuntimeError):
    pass


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    from medssr_nemo.models import save_tiny_model

    return save_tiny_model(tmp_path_factory.mktemp("tiny") / "tiny-llama", "llama", seed=1)


def _cfg(tiny_dir, out, *extra):
    return load_config("base", [
        f"eval.output_dir={out}", f"eval.checkpoints=[{tiny_dir}]", f"eval.benchmarks=[{','.join(BENCHMARKS)}]",
        "eval.limit=3", "eval.num_samples=2", "eval.max_new_tokens=6", "eval.batch_size=4", "eval.chart=false",
        *extra,
    ])


def _counting_loader(cfg, counter):
    return watching_loader(cfg, lambda reference, tokenizer, prompts: counter.append(len(prompts)))


def test_kill_and_resume_gives_the_same_results_files(tiny_dir, tmp_path):
    full_calls: list[int] = []
    cfg = _cfg(tiny_dir, tmp_path / "full")
    run_eval(cfg, policy_loader=_counting_loader(cfg, full_calls), progress=False)

    # Kill after the chunk that finishes the first benchmark and starts the second (the hook
    # names the benchmark of a chunk's last sample) ...
    def kill(benchmark, samples_done):
        if benchmark == "bioasq":
            raise Killed(f"killed after {samples_done} samples")
    cfg = _cfg(tiny_dir, tmp_path / "resumed")
    with pytest.raises(Killed):
        run_eval(cfg, policy_loader=default_policy_loader(cfg), progress=False, after_chunk=kill)
    partial = tmp_path / "resumed" / "tiny-llama" / "bioasq" / "generations.partial.jsonl"
    assert len(partial.read_text().splitlines()) == 2           # the shared chunk's 2 bioasq samples survived
    assert (tmp_path / "resumed" / "tiny-llama" / "pubmedqa" / "metrics.json").exists()
    # ... with a torn last line, as a kill in the middle of a write leaves it
    with open(partial, "a") as handle:
        handle.write('{"benchmark": "bioasq", "id": "bioasq-')

    resumed_calls: list[int] = []
    run_eval(cfg, policy_loader=_counting_loader(cfg, resumed_calls), progress=False)
    assert not partial.exists()
    for benchmark in BENCHMARKS:
        for name in FILES:
            full = (tmp_path / "full" / "tiny-llama" / benchmark / name).read_bytes()
            assert (tmp_path / "resumed" / "tiny-llama" / benchmark / name).read_bytes() == full, (benchmark, name)
    assert (tmp_path / "resumed" / "summary.json").read_bytes() == (tmp_path / "full" / "summary.json").read_bytes()
    # 2 benchmarks x 3 questions x 2 samples = 12 = three chunks of 4, the middle one shared by both
    # benchmarks; only the missing last chunk was generated again
    assert full_calls == [4, 4, 4] and resumed_calls == [4]


def test_a_finished_run_is_not_generated_again(tiny_dir, tmp_path):
    cfg = _cfg(tiny_dir, tmp_path / "out", "eval.limit=1", "eval.num_samples=1")
    run_eval(cfg, progress=False)
    calls: list[int] = []
    run_eval(cfg, policy_loader=_counting_loader(cfg, calls), progress=False)
    assert calls == []


def test_other_settings_in_the_same_directory_are_refused(tiny_dir, tmp_path):
    run_eval(_cfg(tiny_dir, tmp_path / "out", "eval.limit=1", "eval.num_samples=1"), progress=False)
    with pytest.raises(ValueError, match=r"other settings \(differs in \['protocol'\]\)"):
        run_eval(_cfg(tiny_dir, tmp_path / "out", "eval.limit=1", "eval.num_samples=1", "eval.top_k=5"),
                 progress=False)


@pytest.mark.slow
def test_a_process_killed_mid_run_resumes_to_the_same_files(tiny_dir, tmp_path):
    """A real SIGKILL of ``medssr eval`` once some samples are on disk, then a rerun."""
    import subprocess
    import sys
    import time

    def command(out):
        return [sys.executable, "-m", "medssr_nemo.cli.main", "eval", "--no-progress", f"eval.output_dir={out}",
                f"eval.checkpoints=[{tiny_dir}]", "eval.benchmarks=[medqa]", "eval.limit=4", "eval.num_samples=2",
                "eval.max_new_tokens=16", "eval.batch_size=2", "eval.chart=false"]

    subprocess.run(command(tmp_path / "full"), check=True, capture_output=True)
    partial = tmp_path / "killed" / "tiny-llama" / "medqa" / "generations.partial.jsonl"
    proc = subprocess.Popen(command(tmp_path / "killed"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and proc.poll() is None:
        if partial.exists() and partial.stat().st_size > 0:
            proc.kill()
            break
        time.sleep(0.05)
    proc.wait()
    killed_midway = proc.returncode != 0
    subprocess.run(command(tmp_path / "killed"), check=True, capture_output=True)
    for name in FILES:
        assert (tmp_path / "killed" / "tiny-llama" / "medqa" / name).read_bytes() == \
            (tmp_path / "full" / "tiny-llama" / "medqa" / name).read_bytes(), name
    assert killed_midway, "the run finished before it could be killed; the comparison above still holds"
