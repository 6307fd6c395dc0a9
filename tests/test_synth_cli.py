"""``medssr synth``: files written, rerun is a no-op, clear config errors; (slow) the acceptance
command as a subprocess, and resumption after a real SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from medssr_nemo.cli.main import main

FAST = ["synthesis.alpha=1", "synthesis.num_questions=30", "synthesis.filters.decontaminate=false",
        "synthesis.show_progress=false", "synthesis.chunk_size=10"]


def test_synth_writes_records_and_card_then_does_nothing(tmp_path, capsys):
    assert main(["synth", f"output_dir={tmp_path}", *FAST]) == 0
    rows = [json.loads(line) for line in (tmp_path / "synthetic.jsonl").read_text().splitlines()]
    assert len(rows) == 30 and all(r["rare"] is True and r["question"] for r in rows)
    card = json.loads((tmp_path / "synthetic.card.json").read_text())
    assert card["counts"]["written"] == 30 and card["config"]["synthesis"]["alpha"] == 1.0
    assert card["outputs"]["records"] == "synthetic.jsonl"
    assert "wrote 30 of 30 planned questions" in capsys.readouterr().out
    before = (tmp_path / "synthetic.jsonl").stat().st_mtime_ns
    assert main(["synth", f"output_dir={tmp_path}", *FAST]) == 0
    assert "up to date" in capsys.readouterr().out
    assert (tmp_path / "synthetic.jsonl").stat().st_mtime_ns == before


def test_config_errors_name_the_key(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["synth", f"output_dir={tmp_path}", "synthesis.alpha=1.5"])
    assert exit_info.value.code == 2
    assert "synthesis.alpha=1.5 is out of range" in capsys.readouterr().err
    assert main(["synth", f"output_dir={tmp_path}", *FAST, "+synthesis.question_types.riddle=1"]) == 1
    err = capsys.readouterr().err
    assert "synthesis.question_types names ['riddle']" in err and "diagnosis" in err


def test_a_different_config_does_not_reuse_unfinished_parts(tmp_path, capsys):
    parts = tmp_path / ".synthetic.parts"
    parts.mkdir()
    (parts / "manifest.json").write_text(json.dumps({"fingerprint": "something else"}))
    assert main(["synth", f"output_dir={tmp_path}", *FAST]) == 1
    assert "holds an unfinished run with a different config" in capsys.readouterr().err


ACCEPTANCE = ["synthesis.synthesizer=kg", "synthesis.alpha=0.3", "synthesis.num_questions=2000", "synthesis.seed=7"]


def _medssr(*args: str) -> list[str]:
    return [sys.executable, "-m", "medssr_nemo.cli.main", *args]


@pytest.mark.slow
def test_acceptance_command(tmp_path):
    started = time.perf_counter()
    done = subprocess.run(_medssr("synth", *ACCEPTANCE, f"output_dir={tmp_path}"), capture_output=True, text=True,
                          timeout=600)
    elapsed = time.perf_counter() - started
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [json.loads(line) for line in (tmp_path / "synthetic.jsonl").read_text().splitlines()]
    assert len(rows) == 2000 and all(isinstance(r["question"], str) and isinstance(r["rare"], bool) for r in rows)
    assert abs(sum(r["rare"] for r in rows) / 2000 - 0.3) <= 0.02
    # the done-when thresholds, from the card's audit (the default suite checks the same in-process
    # in tests/test_synth_kg.py; wall time is reported, not asserted)
    audit = json.loads((tmp_path / "synthetic.card.json").read_text())["audit"]
    assert abs(audit["mix"]["rare_share"] - 0.3) <= 0.02
    assert audit["overall"]["contradicted"] == 0 and audit["overall"]["incoherent"] == 0
    assert audit["overall"]["leakage_share"] < 0.01 and audit["overall"]["ambiguous_share"] < 0.05
    print(f"acceptance command took {elapsed:.1f} s")


@pytest.mark.slow
def test_resume_after_sigkill_is_byte_identical(tmp_path):
    args = ["synthesis.alpha=0.5", "synthesis.num_questions=600", "synthesis.chunk_size=100", "synthesis.seed=5"]
    reference = tmp_path / "reference"
    subprocess.run(_medssr("synth", *args, f"output_dir={reference}"), check=True, capture_output=True, timeout=600)
    killed = tmp_path / "killed"
    process = subprocess.Popen(_medssr("synth", *args, f"output_dir={killed}"), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    parts = killed / ".synthetic.parts"
    deadline = time.monotonic() + 500
    while not (parts / "chunk-00001.json").exists():
        assert process.poll() is None and time.monotonic() < deadline, "run ended before two chunks were written"
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    finished = sorted(p.name for p in parts.glob("chunk-*.json"))
    assert 2 <= len(finished) < 6 and not (killed / "synthetic.jsonl").exists()
    subprocess.run(_medssr("synth", *args, f"output_dir={killed}"), check=True, capture_output=True, timeout=600)
    assert (killed / "synthetic.jsonl").read_bytes() == (reference / "synthetic.jsonl").read_bytes()
    card = json.loads((killed / "synthetic.card.json").read_text())
    assert card["counts"]["written"] == 600
    assert card["run"] == {"chunks": 6, "chunks_reloaded": len(finished)}   # reloaded, not regenerated
