"""`medssr run` on a fresh machine: no MEDSSR_DATA, no ../shared beside the project, so the data
root is the user cache; the run fetches what it reads from the mirror (a local HTTP server serving
the real files, tests/data_server.py) and verifies it before its first step."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from data_server import DataServer
from medssr_nemo.data import root as root_mod
from medssr_nemo.data.download import check_file
from medssr_nemo.data.manifest import load_manifest, required_for_run
from medssr_nemo.data.root import resolve_data_root

MANIFEST = load_manifest()
SOURCE_ROOT = resolve_data_root().path
pytestmark = pytest.mark.skipif(
    not all((SOURCE_ROOT / f.path).is_file() for f in MANIFEST.files if not f.optional),
    reason=f"the data files are not all in {SOURCE_ROOT} (`medssr data download` fetches them)")


class StopAfterData(BaseException):
    """Ends the run once the real-data step is done (not an Exception: nothing handles it)."""


@pytest.fixture
def fresh_machine(tmp_path, monkeypatch):
    """No $MEDSSR_DATA, no ../shared/data beside the project; the mirror serves the real files."""
    project = tmp_path / "checkout" / "medssr_nemo"
    project.mkdir(parents=True)
    monkeypatch.delenv("MEDSSR_DATA", raising=False)
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    monkeypatch.setattr(root_mod, "PROJECT_ROOT", project.parent)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with DataServer(MANIFEST, SOURCE_ROOT) as server:
        monkeypatch.setenv("MEDSSR_DATA_MIRROR", server.base)
        yield tmp_path / "cache" / "medssr_nemo" / "data", server


def test_run_fetches_and_verifies_what_it_reads_before_its_first_step(fresh_machine, tmp_path, monkeypatch, capsys):
    cache, server = fresh_machine
    from medssr_nemo.config import load_config
    from medssr_nemo.pipeline import steps

    seen: dict[str, object] = {}

    def stop(self, ctx, out):
        seen["root"] = resolve_data_root().path
        seen["real"] = (ctx.shared_dir / "real_data" / "real.card.json").exists()
        raise StopAfterData()

    monkeypatch.setattr(steps.Synthesis, "run", stop)
    from medssr_nemo.cli.main import main

    with pytest.raises(StopAfterData):
        main(["run", "--config", "quickstart", f"output_dir={tmp_path / 'run'}"])
    assert seen == {"root": cache, "real": True}       # real data prepared from the downloaded files
    cfg = load_config("quickstart", [])
    needed = required_for_run(cfg)
    required = [e for e in needed if not e.optional]
    assert {e.dataset for e in required} >= {"medssr_paper", "medxpertqa", "rarebench", "orpha2omim", "medmcqa",
                                             "mmlu_medical"}
    assert all(check_file(e, cache).state == "verified" for e in required)
    assert not (cache / "train" / "pubmedqa" / "ori_pqal.json").exists()     # the quickstart has no PubMedQA pool
    err = capsys.readouterr().err
    assert "RareBench stands in for RareDis-Sub" in err
    assert err.count("Licences of the data being fetched") == 1 and "CC-BY-4.0" in err      # printed once
    assert "orpha2omim" in (cache / "LICENSES.md").read_text()
    card = json.loads((tmp_path / "run" / "real_data" / "real.card.json").read_text())
    assert card["pools"]["medmcqa"]["written"] > 0


def test_run_with_no_download_only_reports_what_is_missing(fresh_machine, tmp_path, capsys):
    cache, server = fresh_machine
    from medssr_nemo.cli.main import main

    rc = main(["run", "--config", "quickstart", "--no-download", f"output_dir={tmp_path / 'run'}"])
    err = capsys.readouterr().err
    assert rc == 1
    assert "--no-download" in err and "eval/medssr/test_short_medqa.json" in err
    assert "medssr data download --only" in err
    assert server.requests == [] and not (tmp_path / "run").exists() and not cache.exists()


@pytest.mark.slow
@pytest.mark.timeout(3600)  # the whole quickstart: 12 to 35 minutes on 2 cores, past the suite's 900 s
def test_quickstart_on_a_fresh_machine_fetches_everything_and_runs(tmp_path):
    """README's first command with MEDSSR_DATA unset and no ../shared: the data comes from the
    local server, then the whole quickstart runs (about 20 minutes on 2 cores)."""
    import os

    project = tmp_path / "checkout"
    project.mkdir()
    run_dir = tmp_path / "run"
    code = ("import sys, pathlib; import medssr_nemo.data.root as r; r.PROJECT_ROOT = pathlib.Path(sys.argv[1]); "
            "from medssr_nemo.cli.main import main; sys.exit(main(sys.argv[2:]))")
    with DataServer(MANIFEST, SOURCE_ROOT) as server:
        env = {k: v for k, v in os.environ.items() if k not in ("MEDSSR_DATA", "HF_ENDPOINT")}
        env.update(XDG_CACHE_HOME=str(tmp_path / "cache"), MEDSSR_DATA_MIRROR=server.base)
        proc = subprocess.run([sys.executable, "-c", code, str(project), "run", "--config", "quickstart",
                               f"output_dir={run_dir}"], capture_output=True, text=True, timeout=3600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    cache = tmp_path / "cache" / "medssr_nemo" / "data"
    from medssr_nemo.config import load_config

    needed = [e for e in required_for_run(load_config("quickstart", [])) if not e.optional]
    assert all(check_file(e, cache).state == "verified" for e in needed)
    assert (run_dir / "report" / "report.md").exists()


def test_run_on_complete_data_without_network_goes_on_and_says_rarebench_stands_in(tmp_path, monkeypatch):
    """All required files verified, the hub unreachable (a closed port as mirror): the run's data
    check passes, writes nothing into the data root, and reports that RareBench stands in."""
    import socket

    from medssr_nemo.config import load_config
    from medssr_nemo.data.ensure import ensure_run_data

    if (SOURCE_ROOT / "eval" / "raredis_sub").exists():
        pytest.skip("this data root holds RareDis-Sub")
    with socket.socket() as sock:            # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    monkeypatch.setenv("MEDSSR_DATA", str(SOURCE_ROOT))
    monkeypatch.setenv("MEDSSR_DATA_MIRROR", f"http://127.0.0.1:{closed}")
    before = sorted(p.name for p in SOURCE_ROOT.iterdir())
    lines: list[str] = []
    assert ensure_run_data(load_config("quickstart", []), progress=False, echo=lines.append) == SOURCE_ROOT
    assert any("RareBench stands in for RareDis-Sub" in line for line in lines)
    after = sorted(p.name for p in SOURCE_ROOT.iterdir())
    assert after == before
