"""`medssr data download/status` and the data-root rule, against a local HTTP server on
127.0.0.1 that serves the real data files under the manifest's URL paths (tests/data_server.py).
No network: every URL goes through the mirror override."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from data_server import DataServer, medmcqa_hub_parquet, mirror_path
from medssr_nemo.data import root as root_mod
from medssr_nemo.data.download import DownloadError, check_file, download, fetch_file
from medssr_nemo.data.manifest import FileEntry, Manifest, Source, file_sha256, load_manifest
from medssr_nemo.data.root import resolve_data_root

MANIFEST = load_manifest()
SOURCE_ROOT = resolve_data_root().path          # the real files the server serves, in place
pytestmark = pytest.mark.skipif(
    not all((SOURCE_ROOT / f.path).is_file() for f in MANIFEST.files if not f.optional),
    reason=f"the data files are not all in {SOURCE_ROOT} (`medssr data download` fetches them)")
REQUIRED = [f for f in MANIFEST.files if not f.optional]
FAST = dict(progress=False, retries=1, backoff_s=0.01, timeout_s=10.0)


@pytest.fixture(autouse=True)
def _no_hub_endpoint(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))      # download locks live there
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    monkeypatch.delenv("MEDSSR_DATA_MIRROR", raising=False)


@pytest.fixture(scope="module")
def server():
    with DataServer(MANIFEST, SOURCE_ROOT) as srv:
        yield srv


@pytest.fixture(autouse=True)
def _reset(server):
    server.blocked_hosts.clear(), server.corrupt.clear(), server.cut_once.clear(), server.delay_per_chunk.clear()
    server.no_range.clear()
    server.requests.clear()


def _leftovers(root: Path) -> list[str]:
    work = root / ".download"
    tmp = [p.name for p in root.rglob(".*.tmp")]
    return tmp + ([p.name for p in work.iterdir() if p.name != "lock"] if work.exists() else [])


def _entry(path: str) -> FileEntry:
    entry = MANIFEST.entry(path)
    assert entry is not None, path
    return entry


# ------------------------------------------------------------------------------ the manifest
@pytest.mark.skipif(not (SOURCE_ROOT / "SHA256SUMS").is_file(), reason=f"no SHA256SUMS in {SOURCE_ROOT}")
def test_manifest_matches_the_data_sha256sums_and_sizes():
    sums = {}
    for line in (SOURCE_ROOT / "SHA256SUMS").read_text().splitlines():
        digest, path = line.split(maxsplit=1)
        sums[path.removeprefix("./")] = digest
    pinned = {f.path: f for f in MANIFEST.files if f.sha256}
    assert set(pinned) == set(sums), (set(pinned) ^ set(sums))
    for path, digest in sums.items():
        assert pinned[path].sha256 == digest, path
        assert pinned[path].size == (SOURCE_ROOT / path).stat().st_size, path
    assert all(f.optional for f in MANIFEST.files if not f.sha256)      # only RareDis-Sub is unpinned


def test_every_manifest_dataset_has_a_licence_and_every_file_a_source():
    for name, ds in MANIFEST.datasets.items():
        assert ds.licence and ds.homepage.startswith("https://"), name
    for f in MANIFEST.files:
        assert f.sources and all(s.resolved_url().startswith("https://") for s in f.sources), f.path


def test_only_selects_groups_datasets_and_paths_and_rejects_unknown_names():
    assert {f.dataset for f in MANIFEST.select(["knowledge"])} == {"orpha2omim"}
    assert len(MANIFEST.select(["mmlu_medical"])) == 12
    assert [f.path for f in MANIFEST.select(["train/pubmedqa/ori_pqal.json"])] == ["train/pubmedqa/ori_pqal.json"]
    with pytest.raises(LookupError, match="names no data file"):
        MANIFEST.select(["medqa_full"])


# ------------------------------------------------------------------------------ the data root
def test_data_root_rule_env_then_shared_beside_project_then_xdg_cache(monkeypatch, tmp_path):
    project = tmp_path / "proj" / "medssr_nemo"
    project.mkdir(parents=True)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("MEDSSR_DATA", str(tmp_path / "mine"))
    assert resolve_data_root(project.parent).path == tmp_path / "mine"
    monkeypatch.delenv("MEDSSR_DATA")
    assert resolve_data_root(project.parent).path == tmp_path / "cache" / "medssr_nemo" / "data"
    (tmp_path / "shared" / "data").mkdir(parents=True)
    assert resolve_data_root(project.parent).path == (tmp_path / "shared" / "data").resolve()


# ------------------------------------------------------------------------------ downloads
def test_download_everything_from_the_mirror_verifies_every_file(server, tmp_path):
    lines: list[str] = []
    report = download(MANIFEST.files, tmp_path, manifest=MANIFEST, mirror=server.base, echo=lines.append, **FAST)
    assert len(report.fetched) == len(REQUIRED)
    assert [p for p, _ in report.failed_optional] == ["eval/raredis_sub/test.parquet"]   # not served: hub only
    for entry in REQUIRED:
        assert check_file(entry, tmp_path).state == "verified", entry.path
    assert _leftovers(tmp_path) == []
    licences = (tmp_path / "LICENSES.md").read_text()
    assert "CC-BY-4.0" in licences and "orpha2omim" in licences
    assert sum("Licences of the data" in line for line in lines) == 1         # printed once
    # a second run fetches nothing
    again = download(MANIFEST.files, tmp_path, manifest=MANIFEST, mirror=server.base, echo=lines.append, **FAST)
    assert again.fetched == [] and len(again.skipped) == len(REQUIRED)


def test_corrupted_byte_is_refused_and_nothing_bad_remains(server, tmp_path):
    entry = _entry("eval/medssr/test_short_bioasq.json")
    for source in entry.sources:
        server.corrupt.add(mirror_path(source.resolved_url()))
    with pytest.raises(DownloadError) as err:
        download([entry], tmp_path, manifest=MANIFEST, mirror=server.base, echo=lambda _: None, **FAST)
    text = str(err.value)
    assert "checksum mismatch" in text and entry.sha256 in text and "raw.githubusercontent.com" in text
    bad = hashlib.sha256(server.body(mirror_path(entry.sources[0].resolved_url()))).hexdigest()
    assert bad in text
    assert not (tmp_path / entry.path).exists()
    assert _leftovers(tmp_path) == []


def test_checksum_mismatch_on_the_first_source_falls_back_to_the_next(server, tmp_path):
    entry = _entry("eval/medssr/test_short_bioasq.json")
    server.corrupt.add(mirror_path(entry.sources[0].resolved_url()))
    used = fetch_file(entry, tmp_path, _workdir(tmp_path), mirror=server.base, **FAST)
    assert used == entry.sources[1]
    assert check_file(entry, tmp_path).state == "verified"


def test_unreachable_source_falls_back_to_the_next(server, tmp_path):
    server.blocked_hosts.add("raw.githubusercontent.com")
    entries = MANIFEST.select(["pubmedqa"])
    report = download(entries, tmp_path, manifest=MANIFEST, mirror=server.base, echo=lambda _: None, **FAST)
    assert {src for _, src in report.fetched} == {s.describe() for e in entries for s in e.sources[1:]}
    assert all("cdn.jsdelivr.net" in src for _, src in report.fetched)
    assert all(check_file(e, tmp_path).state == "verified" for e in entries)
    tried = [p for p, _ in server.requests if p.startswith("/raw.githubusercontent.com")]
    assert len(tried) == 2 * len(entries)           # one retry each, then the next source


def test_no_reachable_source_says_what_to_do(server, tmp_path, capsys, monkeypatch):
    server.blocked_hosts.update({"raw.githubusercontent.com", "cdn.jsdelivr.net"})
    monkeypatch.setenv("MEDSSR_DATA_MIRROR", server.base)
    from medssr_nemo.cli.main import main

    rc = main(["data", "download", "--only", "orpha2omim", "--dest", str(tmp_path), "--retries", "0", "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 1
    assert "cannot fetch knowledge/orpha2omim.json from any of its 2 source(s)" in err
    assert "medssr data download --dest DIR" in err and "MEDSSR_DATA_MIRROR" in err
    assert not (tmp_path / "knowledge" / "orpha2omim.json").exists()


def test_dropped_connection_resumes_with_a_range_request(server, tmp_path):
    entry = _entry("eval/medssr/test_short_medqa.json")
    path = mirror_path(entry.sources[0].resolved_url())
    server.cut_once[path] = 300_000
    download([entry], tmp_path, manifest=MANIFEST, mirror=server.base, echo=lambda _: None, **FAST)
    assert check_file(entry, tmp_path).state == "verified"
    ranges = [r for p, r in server.requests if p == path]
    assert ranges == [None, "bytes=300000-"]


def test_server_without_range_support_restarts_the_file_from_the_start(server, tmp_path):
    entry = _entry("eval/medssr/test_short_medqa.json")
    path = mirror_path(entry.sources[0].resolved_url())
    server.cut_once[path] = 300_000
    server.no_range.add(path)
    download([entry], tmp_path, manifest=MANIFEST, mirror=server.base, echo=lambda _: None, **FAST)
    assert check_file(entry, tmp_path).state == "verified"          # not 300 kB twice
    assert [r for p, r in server.requests if p == path] == [None, "bytes=300000-"]


def test_archive_member_by_path_or_unambiguous_name(tmp_path):
    import zipfile

    from medssr_nemo.data.convert import extract_member

    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("data/dev.json", b"dev")
        zf.writestr("__MACOSX/data/dev.json", b"resource fork")
        zf.writestr("x/test.json", b"1")
        zf.writestr("y/test.json", b"2")
    extract_member(archive, "dev.json", tmp_path / "out")
    assert (tmp_path / "out").read_bytes() == b"dev"
    extract_member(archive, "y/test.json", tmp_path / "out")
    assert (tmp_path / "out").read_bytes() == b"2"
    with pytest.raises(ValueError, match="more than one member"):
        extract_member(archive, "test.json", tmp_path / "out")
    with pytest.raises(ValueError, match="no member"):
        extract_member(archive, "train.json", tmp_path / "out")
    (tmp_path / "page.html").write_text("<html>quota exceeded</html>")
    with pytest.raises(ValueError, match="neither"):
        extract_member(tmp_path / "page.html", "dev.json", tmp_path / "out")


def test_killed_download_resumes_from_its_partial_file(server, tmp_path):
    entry = _entry("eval/medssr/test_short_medqa.json")            # 1.26 MB
    path = mirror_path(entry.sources[0].resolved_url())
    server.delay_per_chunk[path] = 0.08                             # ~6 s for the whole file
    env = {**os.environ, "MEDSSR_DATA_MIRROR": server.base}
    proc = subprocess.Popen([sys.executable, "-m", "medssr_nemo.cli.main", "data", "download", "--only", entry.path,
                             "--dest", str(tmp_path), "--no-progress"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    work = tmp_path / ".download"
    deadline = time.time() + 60
    parts: list[Path] = []
    while time.time() < deadline:
        parts = list(work.glob("*.part")) if work.exists() else []
        if parts and parts[0].stat().st_size > 200_000:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert parts, "the download never started"
    had = parts[0].stat().st_size
    assert 0 < had < entry.size and not (tmp_path / entry.path).exists()
    server.delay_per_chunk.clear()
    download([entry], tmp_path, manifest=MANIFEST, mirror=server.base, echo=lambda _: None, **FAST)
    assert check_file(entry, tmp_path).state == "verified"
    last_range = [r for p, r in server.requests if p == path][-1]
    assert last_range is not None and int(last_range[6:-1]) >= had
    assert _leftovers(tmp_path) == []


# ------------------------------------------------------------------------------ hub conversion
def test_hub_parquet_conversion_on_a_small_fixture_gives_the_publishers_jsonl(tmp_path):
    from medssr_nemo.data.convert import medmcqa_parquet_to_jsonl

    rows = [{"question": "Q1 a/b?", "exp": None, "cop": 1, "opa": "x", "opb": "y", "opc": "z", "opd": "w",
             "subject_name": "Anatomy", "topic_name": None, "id": "id-1", "choice_type": "single"},
            {"question": "Q2 é", "exp": "because", "cop": 4, "opa": "1", "opb": "2", "opc": "3", "opd": "4",
             "subject_name": "Surgery", "topic_name": "T", "id": "id-2", "choice_type": "multi"}]
    parquet = tmp_path / "validation-00000-of-00001.parquet"
    parquet.write_bytes(medmcqa_hub_parquet("\n".join(json.dumps(r) for r in rows).encode()))
    import pyarrow.parquet as pq

    table = pq.read_table(parquet)
    assert table.column_names[:2] == ["id", "question"] and table.column("cop").to_pylist() == [0, 3]
    out = tmp_path / "dev.json"
    medmcqa_parquet_to_jsonl(parquet, out)
    # pandas' JSON lines: compact, '/' escaped, non-ASCII escaped, the publisher's key order
    assert out.read_text() == (
        '{"question":"Q1 a\\/b?","exp":null,"cop":1,"opa":"x","opb":"y","opc":"z","opd":"w",'
        '"subject_name":"Anatomy","topic_name":null,"id":"id-1","choice_type":"single"}\n'
        '{"question":"Q2 \\u00e9","exp":"because","cop":4,"opa":"1","opb":"2","opc":"3","opd":"4",'
        '"subject_name":"Surgery","topic_name":"T","id":"id-2","choice_type":"multi"}\n')


def test_medmcqa_from_the_hub_layout_verifies_against_the_manifest(server, tmp_path):
    entry = _entry("train/medmcqa/dev.json")
    hub = [s for s in entry.sources if s.hub]
    assert hub and hub[0].convert == "medmcqa_parquet_to_jsonl"
    only_hub = replace(entry, sources=tuple(hub))
    used = fetch_file(only_hub, tmp_path, _workdir(tmp_path), mirror=server.base, **FAST)
    assert used.hub == "openlifescienceai/medmcqa"
    assert file_sha256(tmp_path / entry.path) == entry.sha256


def _workdir(root: Path) -> Path:
    (root / ".download").mkdir(parents=True, exist_ok=True)
    return root / ".download"


# ------------------------------------------------------------------------------ status and hints
def test_status_lists_verified_missing_and_corrupt(server, tmp_path, capsys):
    entries = MANIFEST.select(["pubmedqa"])
    download(entries, tmp_path, manifest=MANIFEST, mirror=server.base, echo=lambda _: None, **FAST)
    target = tmp_path / "train/pubmedqa/test_ground_truth.json"
    data = bytearray(target.read_bytes())
    data[10] ^= 1
    target.write_bytes(bytes(data))
    from medssr_nemo.cli.main import main

    rc = main(["data", "status", "--dest", str(tmp_path)])
    out = capsys.readouterr().out
    assert rc == 1
    assert "verified" in out and "train/pubmedqa/ori_pqal.json" in out
    assert any(line.split()[0] == "corrupt" and "test_ground_truth.json" in line for line in out.splitlines())
    assert any(line.split()[0] == "missing" and "orpha2omim.json" in line for line in out.splitlines())


@pytest.mark.parametrize("command", [["data", "real"], ["synth", "synthesis.num_questions=2"]])
def test_a_command_missing_a_data_file_says_which_command_fetches_it(command, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MEDSSR_DATA", str(tmp_path / "empty"))
    from medssr_nemo.cli.main import main

    rc = main([*command, f"output_dir={tmp_path / 'out'}"])
    err = capsys.readouterr().err
    assert rc == 1
    assert "not found" in err and "medssr data download --only eval" in err


def test_data_root_that_cannot_be_written_is_a_clear_error(server, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    with pytest.raises(DownloadError, match="cannot write the data root"):
        download(MANIFEST.select(["orpha2omim"]), blocker / "data", manifest=MANIFEST, mirror=server.base,
                 echo=lambda _: None, **FAST)
    optional_only = download(MANIFEST.select(["raredis_sub"]), blocker / "data", manifest=MANIFEST,
                             mirror=server.base, echo=lambda _: None, **FAST)     # reported, not fatal
    assert [p for p, _ in optional_only.failed_optional] == ["eval/raredis_sub/test.parquet"]
    assert blocker.read_text() == "not a directory"


# ------------------------------------------------------------------------------ RareDis-Sub
def test_raredis_sub_fetched_into_the_data_root_joins_the_suite_beside_rarebench(server, tmp_path, monkeypatch):
    """The hub's parquet (a small fixture written by `datasets`) served at the hub coordinates of
    the manifest: downloaded, checked by its row count, then evaluated as the paper's rare
    benchmark with RareBench kept; without it the report says RareBench stands in."""
    import datasets

    from medssr_nemo.eval.benchmarks import get_benchmark
    from medssr_nemo.eval.suite import STANDS_IN, effective_benchmarks, rare_benchmark_note

    monkeypatch.setenv("MEDSSR_DATA", str(tmp_path))
    monkeypatch.delenv("MEDSSR_RAREDIS_SUB", raising=False)
    entry = _entry("eval/raredis_sub/test.parquet")
    rows = [{"id": f"rd-{i}", "question": f"Which rare disease fits case {i}?\nA. Alpha\nB. Beta\nC. Gamma\nD. Delta",
             "gold": "ABCD"[i % 4], "name": "raredis"} for i in range(3)]
    import io

    buf = io.BytesIO()
    datasets.Dataset.from_list(rows).to_parquet(buf)
    small = replace(entry, rows=3)
    assert rare_benchmark_note(["medqa", "rarebench"]) == STANDS_IN
    with DataServer(MANIFEST, SOURCE_ROOT, extra={mirror_path(entry.sources[1].resolved_url()): buf.getvalue()}) as srv:
        report = download([small], tmp_path, manifest=MANIFEST, mirror=srv.base, echo=lambda _: None, **FAST)
    assert report.fetched == [(entry.path, entry.sources[1].describe())]     # first source 404: fell back
    assert effective_benchmarks(["medqa", "rarebench"]) == ["medqa", "raredis_sub", "rarebench"]
    assert rare_benchmark_note(["medqa", "rarebench"]) is None
    records = get_benchmark("raredis_sub").load()
    assert [r.id for r in records] == ["rd-0", "rd-1", "rd-2"] and all(r.rare for r in records)


def test_raredis_sub_checksum_is_recorded_at_first_fetch_and_a_change_is_caught(server, tmp_path):
    """The manifest cannot pin RareDis-Sub, so its first fetch writes PINNED_SHA256SUMS beside the
    data; bytes that change later (same row count) read as corrupt, and a refetch that brings
    other bytes is refused, keeping the file that was there."""
    import io

    import datasets

    from medssr_nemo.data.pins import PINS_NAME, read_pins

    entry = replace(_entry("eval/raredis_sub/test.parquet"), rows=2)

    def parquet(tag: str) -> bytes:
        buf = io.BytesIO()
        datasets.Dataset.from_list([{"id": f"{tag}-{i}", "question": "Q?\nA. a\nB. b", "gold": "A"}
                                    for i in range(2)]).to_parquet(buf)
        return buf.getvalue()

    first, other = parquet("v1"), parquet("v2")
    hub = mirror_path(entry.sources[0].resolved_url())
    with DataServer(MANIFEST, SOURCE_ROOT, extra={hub: first}) as srv:
        download([entry], tmp_path, manifest=MANIFEST, mirror=srv.base, echo=lambda _: None, **FAST)
    target = tmp_path / entry.path
    assert read_pins(tmp_path) == {entry.path: hashlib.sha256(first).hexdigest()}
    assert check_file(entry, tmp_path).state == "present"
    target.write_bytes(other)                                   # same rows, other bytes
    state = check_file(entry, tmp_path)
    assert state.state == "corrupt" and PINS_NAME in state.detail
    target.unlink()
    with DataServer(MANIFEST, SOURCE_ROOT, extra={hub: other}) as srv:
        with pytest.raises(DownloadError, match="when first fetched"):
            fetch_file(entry, tmp_path, tmp_path / ".download", mirror=srv.base, **FAST)
    assert not target.exists() and not _leftovers(tmp_path)
    assert read_pins(tmp_path) == {entry.path: hashlib.sha256(first).hexdigest()}


def test_docs_list_every_source_and_licence():
    text = (Path(__file__).resolve().parent.parent / "docs" / "data.md").read_text()
    for f in MANIFEST.files:
        assert f"`{f.path}`" in text, f.path
        for s in f.sources:
            assert s.describe() in text, s.describe()
    for name, ds in MANIFEST.datasets.items():
        assert f"| `{name}` |" in text and ds.licence in text, name
