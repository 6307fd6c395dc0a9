"""Files a command leaves behind: atomic writes, fingerprints, run cards and the is-finished check.

Every command (``medssr data``, ``synth``, ``label``, ``eval``, ``train``, ``run``) writes its
outputs through this module, so two rules hold everywhere:

- A reader never sees half a file: each write goes to a hidden temporary sibling
  (``.<name>.tmp-<pid>``) that is renamed over the target (``os.replace`` is atomic on POSIX).
- A finished run is recognised by its *card* (``<name>.card.json``), written last: the card
  holds the run's fingerprint (sha256 of its canonical-JSON identity: config, input hashes) and
  the sha256 of its main output. ``is_finished`` re-runs nothing whose card still matches.

JSON is written with sorted keys, two-space indent and UTF-8 (``ensure_ascii=False``) so equal
content gives equal bytes; JSONL rows the same, one per line.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

CARD_SUFFIX = ".card.json"


# ----------------------------------------------------------------------------- identity

def fingerprint(payload: Any) -> str:
    """sha256 of ``payload`` as canonical JSON (sorted keys; values JSON cannot hold as ``str``)."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ----------------------------------------------------------------------------- atomic writes

def temp_sibling(path: str | os.PathLike, kind: str = "tmp") -> Path:
    """``.<name>.<kind>-<pid>`` next to ``path``; the suffix is kept (matplotlib and pandas pick
    the format from it)."""
    path = Path(path)
    return path.with_name(f".{path.stem}.{kind}-{os.getpid()}{path.suffix}")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path to write ``path``'s content to; on success it replaces ``path``,
    on an exception it is removed and ``path`` is left as it was. For writers that take a file
    name (savefig, to_parquet, pickle)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8), flushed to disk before the rename so a crash leaves old or new."""
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    return path


def json_text(payload: Any) -> str:
    """The canonical on-disk form of one JSON document (see the module docstring)."""
    return json.dumps(payload, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def jsonl_line(row: Any) -> str:
    return json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n"


def write_json_atomic(path: str | os.PathLike, payload: Any) -> Path:
    return write_text_atomic(path, json_text(payload))


def write_jsonl_atomic(path: str | os.PathLike, rows: Iterable[Any]) -> Path:
    return write_text_atomic(path, "".join(jsonl_line(row) for row in rows))


class CorruptLogError(ValueError):
    """An append-only log holds a complete line that is not JSON (not what a kill leaves)."""


def append_jsonl_durable(path: str | os.PathLike, rows: Iterable[Any]) -> None:
    """Append ``rows`` (one ``jsonl_line`` each) to an append-only log in one write, flushed and
    fsynced: a kill loses at most this call's rows and leaves at most one torn last line, which
    ``read_jsonl_log`` cuts off. The resume point of evaluation, labelling and training logs."""
    text = "".join(jsonl_line(row) for row in rows)
    if not text:
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


def read_jsonl_log(path: str | os.PathLike, *, remedy: str, repair: bool = True) -> list[Any]:
    """The rows of a log ``append_jsonl_durable`` wrote ([] when there is no file). Bytes after the
    last newline are a torn write (killed mid-append): skipped, and with ``repair`` cut from the
    file so later appends start on a clean line. A complete line that is not JSON cannot come
    from a kill: ``CorruptLogError`` naming file:line and ``remedy`` (what the user should do)."""
    path = Path(path)
    if not path.exists():
        return []
    data = path.read_bytes()
    good_end = data.rfind(b"\n") + 1
    rows = []
    for lineno, line in enumerate(data[:good_end].decode("utf-8").split("\n")[:-1], 1):
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            raise CorruptLogError(f"{path}:{lineno}: not a JSON line (a kill leaves only a torn last line); "
                                  f"{remedy}") from None
    if repair and good_end < len(data):
        with open(path, "r+b") as handle:
            handle.truncate(good_end)
    return rows


def read_json(path: str | os.PathLike) -> Any:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


@contextlib.contextmanager
def atomic_directory(final: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty temporary directory; when the block ends without error it replaces
    ``final`` (an older ``final`` is moved aside first, then deleted). A kill leaves either the
    old directory or the new one, never a half-written ``final``."""
    final = Path(final)
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    replace_directory(tmp, final)


def replace_directory(tmp: str | os.PathLike, final: str | os.PathLike) -> None:
    """Move a fully written directory ``tmp`` to ``final``, replacing an older one."""
    tmp, final = Path(tmp), Path(final)
    old = final.with_name(f".{final.name}.old-{os.getpid()}")
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)


def remove_tree(path: str | os.PathLike) -> None:
    """Delete a directory, renamed first so a kill mid-way never leaves half a directory that
    looks like a finished output."""
    path = Path(path)
    if not path.exists():
        return
    doomed = path.with_name(f".{path.name}.removing-{os.getpid()}")
    os.replace(path, doomed)
    shutil.rmtree(doomed, ignore_errors=True)


# ----------------------------------------------------------------------------- run cards

def card_path(out_dir: str | os.PathLike, name: str) -> Path:
    return Path(out_dir) / f"{name}{CARD_SUFFIX}"


def make_card(command: str, fingerprint_: str, records_path: str | os.PathLike, *,
              outputs: Mapping[str, Any] | None = None, **sections: Any) -> dict[str, Any]:
    """A run card: the command, its fingerprint, ``sections`` (identity, counts, reports) and
    ``outputs`` (file names) with the sha256 of the main ``records`` file, which ``is_finished``
    checks. Write it with ``write_json_atomic`` after every other output."""
    records_path = Path(records_path)
    return {"command": command, "fingerprint": fingerprint_, **sections,
            "outputs": {"records": records_path.name, "records_sha256": file_sha256(records_path),
                        **(outputs or {})}}


def read_card(path: str | os.PathLike) -> dict[str, Any] | None:
    """The card at ``path``; None if it is missing or torn (not valid JSON)."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return None
    return card if isinstance(card, dict) else None


def is_finished(card_path_: str | os.PathLike, records_path: str | os.PathLike, fingerprint_: str) -> bool:
    """True when the card carries this fingerprint and the records file still has the sha256 the
    card recorded (a records file edited or replaced since makes the run unfinished)."""
    records_path = Path(records_path)
    card = read_card(card_path_)
    if card is None or not records_path.exists():
        return False
    return card.get("fingerprint") == fingerprint_ and \
        card.get("outputs", {}).get("records_sha256") == file_sha256(records_path)
