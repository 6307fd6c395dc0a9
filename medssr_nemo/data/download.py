"""Fetching the manifest's files into a data root: each file from its sources in order, with
retries and exponential backoff, resume of partial downloads (HTTP Range), and verification.

Rules (docs/data.md): a file already present with the manifest's sha256 is skipped; a download is
written under ``<root>/.download/`` and only a verified output is moved into place, so a checksum
mismatch keeps nothing (the error names the source and both hashes) and the next source is tried;
a killed download resumes from its partial file. ``MEDSSR_DATA_MIRROR`` (or ``--mirror``) sends
every request to a mirror that serves the upstream URLs under ``<mirror>/<host>/<path>``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import http.client
import logging
import os
import shutil
import socket
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence
from urllib.parse import urlsplit

from medssr_nemo.artifacts import atomic_path, write_text_atomic
from medssr_nemo.data.convert import convert, extract_member
from medssr_nemo.data.manifest import FileEntry, Manifest, Source, file_sha256, load_manifest
from medssr_nemo.data.pins import PINS_NAME, read_pins, record_pin
from medssr_nemo.data.root import cache_root

log = logging.getLogger(__name__)

MIRROR_ENV = "MEDSSR_DATA_MIRROR"
WORK_DIR = ".download"
LICENCES_FILE = "LICENSES.md"
_USER_AGENT = "medssr_nemo-data/1 (+docs/data.md)"
_RETRYABLE_HTTP = {408, 425, 429, 500, 502, 503, 504}


class DownloadError(FileNotFoundError):
    """No source gave a verified file (the message says what each source did and what to do)."""


class ChecksumError(ValueError):
    """A source's output did not match the manifest."""


class _Permanent(Exception):
    """A failure retrying the same source cannot fix (404, 403)."""


@dataclass
class FileState:
    entry: FileEntry
    state: str                 # verified | missing | corrupt | present (unpinned) | partial
    detail: str = ""


@dataclass
class DownloadReport:
    fetched: list[tuple[str, str]] = field(default_factory=list)     # (path, source)
    skipped: list[str] = field(default_factory=list)
    failed_optional: list[tuple[str, str]] = field(default_factory=list)


def mirror_url(url: str, mirror: str | None) -> str:
    """``url`` as a mirror serves it: ``<mirror>/<host>/<path>[?query]``."""
    if not mirror:
        return url
    parts = urlsplit(url)
    return f"{mirror.rstrip('/')}/{parts.netloc}{parts.path}" + (f"?{parts.query}" if parts.query else "")


# ------------------------------------------------------------------------------ verification
def check_file(entry: FileEntry, root: Path) -> FileState:
    path = root / entry.path
    if not path.is_file():
        return FileState(entry, "missing")
    if entry.sha256 is None:
        rows = _parquet_rows(path)
        if entry.rows is not None and rows != entry.rows:
            return FileState(entry, "corrupt", f"{rows} rows, expected {entry.rows}")
        digest, pin = file_sha256(path), read_pins(root).get(entry.path)
        if pin is None:
            return FileState(entry, "present", f"not pinned; sha256 {digest}")
        if digest != pin:
            return FileState(entry, "corrupt", f"sha256 {digest}, but {pin} when first fetched ({PINS_NAME})")
        return FileState(entry, "present", f"not in the manifest; sha256 as first fetched ({PINS_NAME})")
    size = path.stat().st_size
    if entry.size is not None and size != entry.size:
        return FileState(entry, "corrupt", f"{size} bytes, expected {entry.size}")
    digest = file_sha256(path)
    if digest != entry.sha256:
        return FileState(entry, "corrupt", f"sha256 {digest}, expected {entry.sha256}")
    return FileState(entry, "verified")


def _parquet_rows(path: Path) -> int | None:
    try:
        import pyarrow.parquet as pq

        return pq.ParquetFile(path).metadata.num_rows
    except Exception:
        return None


def status(root: Path, entries: Sequence[FileEntry]) -> list[FileState]:
    return [check_file(e, root) for e in entries]


# ------------------------------------------------------------------------------ HTTP
def _raw_name(url: str) -> str:
    return hashlib.sha256(url.encode()).hexdigest()[:20] + "-" + (Path(urlsplit(url).path).name or "download")


def fetch_url(url: str, work: Path, *, label: str, progress: bool, retries: int, backoff_s: float,
              timeout_s: float) -> Path:
    """The bytes of ``url`` as ``work/<name>.raw``: resumed from ``<name>.part`` if a previous
    attempt left one, retried with exponential backoff on network errors and 5xx/429."""
    final = work / (_raw_name(url) + ".raw")
    if final.exists():                      # an archive another file of this run already fetched
        return final
    part = final.with_suffix(".part")
    last: Exception | None = None
    for attempt in range(retries + 1):
        if attempt:
            delay = backoff_s * 2 ** (attempt - 1)
            log.warning("%s: %s; retry %d/%d in %.1f s", label, last, attempt, retries, delay)
            time.sleep(delay)
        try:
            _fetch_once(url, part, label=label, progress=progress, timeout_s=timeout_s)
            os.replace(part, final)
            return final
        except _Permanent:
            raise
        except urllib.error.URLError as err:
            if isinstance(err.reason, socket.gaierror):      # no such host here: retrying will not help
                raise _Permanent(f"cannot resolve the host ({err.reason})") from None
            last = err
        except (http.client.HTTPException, ConnectionError, socket.timeout, TimeoutError, _Short) as err:
            last = err
    raise ConnectionError(f"{type(last).__name__}: {last} (after {retries + 1} tries)")


class _Short(Exception):
    """The connection ended before the whole body arrived (the partial file is kept)."""


def _fetch_once(url: str, part: Path, *, label: str, progress: bool, timeout_s: float) -> None:
    from tqdm import tqdm

    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout_s)
    except urllib.error.HTTPError as err:
        if err.code == 416 and have:                         # nothing left to send: restart cleanly
            part.unlink()
            raise _Short("server refused the resume range; starting over") from None
        if err.code in _RETRYABLE_HTTP:
            raise
        raise _Permanent(f"HTTP {err.code} {err.reason}") from None
    with response:
        part.parent.mkdir(parents=True, exist_ok=True)     # only once there are bytes to keep
        if have and response.status == 206:
            mode, start = "ab", have
            try:
                total = _total_from_range(response.headers.get("Content-Range"), have)
            except ValueError as err:                        # cannot append: start over on the next try
                part.unlink()
                raise _Short(str(err)) from None
        else:                                                # no range support: from the start
            mode, start = "wb", 0
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
        with open(part, mode) as out, tqdm(total=total, initial=start, unit="B", unit_scale=True, desc=label,
                                            disable=not progress, leave=False) as bar:
            received = start
            while True:
                try:
                    block = response.read(1 << 16)
                except http.client.IncompleteRead as err:
                    out.write(err.partial)
                    raise _Short(f"connection closed after {received + len(err.partial)} bytes") from None
                if not block:
                    break
                out.write(block)
                received += len(block)
                bar.update(len(block))
    if total is not None and received < total:
        raise _Short(f"connection closed after {received} of {total} bytes")


def _total_from_range(header: str | None, start: int) -> int | None:
    # "bytes 100-199/200"
    if not header or "/" not in header:
        return None
    span, total = header.split(" ", 1)[-1].split("/")
    if not span.startswith(f"{start}-"):
        raise ValueError(f"server resumed at {span}, not at byte {start}")
    return int(total) if total.isdigit() else None


# ------------------------------------------------------------------------------ one file
def _from_source(entry: FileEntry, source: Source, root: Path, work: Path, *, mirror: str | None, progress: bool,
                 retries: int, backoff_s: float, timeout_s: float) -> None:
    url = mirror_url(source.resolved_url(), mirror)
    raw = fetch_url(url, work, label=entry.path, progress=progress, retries=retries, backoff_s=backoff_s,
                    timeout_s=timeout_s)
    target = root / entry.path
    with atomic_path(target) as tmp:       # a failure leaves no temporary file and the old target
        try:
            if source.extract:
                extract_member(raw, source.extract, tmp)
            elif source.convert:
                convert(source.convert, raw, tmp)
            else:
                shutil.copyfile(raw, tmp)
            _verify(entry, tmp, source, url, pin=read_pins(root).get(entry.path))
        except (ChecksumError, ValueError, OSError):
            if not source.extract:               # bad bytes: never reuse them (an archive's other members may
                raw.unlink(missing_ok=True)      # still verify; it goes at the end of the run either way)
            raise
    if entry.sha256 is None:                 # the manifest cannot pin it: the first fetch does
        record_pin(root, entry.path, file_sha256(target))
    if not (source.extract or source.convert):
        raw.unlink(missing_ok=True)          # archives stay until the run ends (other members)


def _verify(entry: FileEntry, path: Path, source: Source, url: str, pin: str | None = None) -> None:
    if entry.sha256 is None:
        rows = _parquet_rows(path)
        if entry.rows is not None and rows != entry.rows:
            raise ChecksumError(f"{entry.path} from {source.describe()} ({url}): {rows} rows, expected {entry.rows}")
        digest = file_sha256(path)
        if pin is not None and digest != pin:
            raise ChecksumError(f"{entry.path} from {source.describe()} ({url}): sha256 {digest}, but {pin} when "
                                f"first fetched ({PINS_NAME} in the data root; delete its line to accept the new "
                                "bytes)")
        return
    digest = file_sha256(path)
    if digest != entry.sha256:
        raise ChecksumError(f"{entry.path} from {source.describe()} ({url}): sha256 {digest}, "
                            f"expected {entry.sha256} (the file was removed)")


def fetch_file(entry: FileEntry, root: Path, work: Path, *, mirror: str | None = None, progress: bool = True,
               retries: int = 3, backoff_s: float = 1.0, timeout_s: float = 60.0) -> Source:
    """Fetch one file from its first source that gives verified bytes; the source used."""
    errors = []
    for source in entry.sources:
        try:
            _from_source(entry, source, root, work, mirror=mirror, progress=progress, retries=retries,
                         backoff_s=backoff_s, timeout_s=timeout_s)
            return source
        except ChecksumError as err:
            errors.append(f"checksum mismatch: {err}")
        except _Permanent as err:
            errors.append(f"{source.describe()}: {err}")
        except (ConnectionError, OSError, ValueError) as err:
            errors.append(f"{source.describe()}: {err}")
        log.warning("%s: %s; trying the next source", entry.path, errors[-1])
    raise DownloadError(f"cannot fetch {entry.path} from any of its {len(entry.sources)} source(s):\n  - "
                        + "\n  - ".join(errors) + "\n" + what_to_do(root, mirror))


def what_to_do(root: Path, mirror: str | None) -> str:
    return ("What to do: check the network (and HTTPS_PROXY if you need a proxy); or point "
            f"{MIRROR_ENV}=URL at a mirror of these sources{' (now ' + mirror + ')' if mirror else ''}; or, "
            "on a machine with network, run `medssr data download --dest DIR`, copy DIR here and set "
            f"MEDSSR_DATA=DIR (this run's data root: {root}). docs/data.md lists every source.")


# ------------------------------------------------------------------------------ many files
@contextlib.contextmanager
def _locked(root: Path) -> Iterator[None]:
    """One download per data root at a time on this machine (ranks of one job, two shells); the
    lock lives in the user cache, so a data root nothing is fetched into stays untouched."""

    key = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:16]
    locks = cache_root().parent / "locks"
    try:
        locks.mkdir(parents=True, exist_ok=True)
        handle = open(locks / f"data-{key}.lock", "w")
    except OSError as err:
        log.warning("no download lock (%s): concurrent downloads into %s are not coordinated", err, root)
        yield
        return
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def download(entries: Sequence[FileEntry], root: Path, *, manifest: Manifest | None = None, mirror: str | None = None,
             progress: bool = True, retries: int = 3, backoff_s: float = 1.0, timeout_s: float = 60.0,
             echo=print, show_licences: bool = True) -> DownloadReport:
    """Fetch every missing or corrupt file of ``entries`` into ``root``; a required file no
    source can give raises ``DownloadError``, an optional one is reported and skipped."""
    manifest = manifest or load_manifest()
    mirror = mirror if mirror is not None else os.environ.get(MIRROR_ENV) or None
    report = DownloadReport()
    todo = []
    for entry in entries:
        state = check_file(entry, root)
        if state.state in ("verified", "present"):
            report.skipped.append(entry.path)
        else:
            if state.state == "corrupt":
                echo(f"{entry.path}: {state.detail}; fetching it again")
            todo.append(entry)
    if not todo:
        return report
    work = root / WORK_DIR
    if any(not e.optional for e in todo):        # an optional file's folder is made only once bytes arrive
        try:
            work.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise DownloadError(f"cannot write the data root {root} ({err.strerror}); set MEDSSR_DATA to a "
                                "writable directory, or use `medssr data download --dest DIR`") from None
    if show_licences:
        echo(licence_summary(manifest, {e.dataset for e in todo}))
    with _locked(root):
        try:
            for entry in todo:
                if check_file(entry, root).state in ("verified", "present"):   # another process fetched it
                    report.skipped.append(entry.path)
                    continue
                try:
                    source = fetch_file(entry, root, work, mirror=mirror, progress=progress, retries=retries,
                                        backoff_s=backoff_s, timeout_s=timeout_s)
                except DownloadError as err:
                    if not entry.optional:
                        raise
                    report.failed_optional.append((entry.path, str(err).splitlines()[0]))
                    continue
                report.fetched.append((entry.path, source.describe()))
                echo(f"fetched {entry.path} ({source.describe()})")
        finally:
            for raw in work.glob("*.raw"):        # archives: fetched once per run, then dropped
                raw.unlink(missing_ok=True)
            with contextlib.suppress(OSError):   # gone when no partial download is left to resume
                work.rmdir()
            if report.fetched:
                write_licences(root, manifest)
    return report


# ------------------------------------------------------------------------------ licences
def licence_summary(manifest: Manifest, datasets: set[str]) -> str:
    lines = ["Licences of the data being fetched (also written to LICENSES.md in the data root):"]
    for name in sorted(datasets):
        d = manifest.datasets[name]
        lines.append(f"  {name:<13} {d.licence:<11} {d.homepage}" + (f"  ({d.note})" if d.note else ""))
    return "\n".join(lines)


def write_licences(root: Path, manifest: Manifest) -> Path:
    """``LICENSES.md`` beside the data: each dataset present, its licence and where it came from."""
    present = {e.dataset for e in manifest.files if (root / e.path).exists()}
    lines = ["# Licences of the data in this directory", "",
             "Written by `medssr data download` from medssr_nemo's data manifest. Each dataset keeps its "
             "own licence; the upstream licence files are kept beside the data where the publisher ships one.", "",
             "| dataset | licence | source | note |", "|---|---|---|---|"]
    for name in sorted(present):
        d = manifest.datasets[name]
        lines.append(f"| {name} ({d.title}) | {d.licence} | {d.homepage} | {d.note} |")
    path = root / LICENCES_FILE
    text = "\n".join(lines) + "\n"
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        write_text_atomic(path, text)
    return path
