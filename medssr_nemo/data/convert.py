"""Turning what a source serves into the file the project reads: a member of a zip/tar archive,
or a Hugging Face Hub layout converted to the publisher's original file. The checksum in the
manifest is that of the output, so a conversion that does not reproduce the original bytes is
refused like any corrupt download."""

from __future__ import annotations

import tarfile
import zipfile
from pathlib import Path
from typing import Callable

# MedMCQA's original JSONL (the publisher's data.zip) is pandas' ``to_json(orient="records",
# lines=True)`` of these columns in this order, with ``cop`` 1-based; the hub copy
# (openlifescienceai/medmcqa) stores ``cop`` 0-based (a ClassLabel) and orders columns differently.
MEDMCQA_COLUMNS = ("question", "exp", "cop", "opa", "opb", "opc", "opd", "subject_name", "topic_name", "id",
                   "choice_type")


def extract_member(archive: Path, member: str, out: Path) -> None:
    """Write ``member`` of a zip or tar archive to ``out``; ``member`` is a path inside the archive
    or its trailing part (``dev.json`` matches ``data/dev.json``) when that is unambiguous."""
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            name = _match(archive, [n for n in zf.namelist() if not n.endswith("/")], member)
            with zf.open(name) as src, open(out, "wb") as dst:
                _copy(src, dst)
        return
    try:
        tf = tarfile.open(archive)
    except tarfile.TarError:
        raise ValueError(f"{archive.name}: expected a zip or tar archive holding {member!r}, got neither") from None
    with tf:
        members = {m.name: m for m in tf.getmembers() if m.isfile()}
        name = _match(archive, list(members), member)
        src = tf.extractfile(members[name])
        assert src is not None
        with src, open(out, "wb") as dst:
            _copy(src, dst)


def _match(archive: Path, names: list[str], member: str) -> str:
    member = member.strip("/")
    names = [n for n in names if not n.startswith("__MACOSX/")]      # macOS zip metadata
    exact = [n for n in names if n.strip("./") == member]
    hits = exact or [n for n in names if n.endswith("/" + member)]
    if len(hits) != 1:
        raise ValueError(f"{archive.name}: {'no' if not hits else 'more than one'} member matches {member!r}"
                         + (f" ({hits[:3]})" if hits else ""))
    return hits[0]


def _copy(src, dst, chunk: int = 1 << 20) -> None:
    while block := src.read(chunk):
        dst.write(block)


def medmcqa_parquet_to_jsonl(source: Path, out: Path) -> None:
    """The hub's MedMCQA parquet split -> the publisher's JSONL (see ``MEDMCQA_COLUMNS``)."""
    import pyarrow.parquet as pq

    frame = pq.read_table(source).to_pandas()
    missing = [c for c in MEDMCQA_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"{source.name}: not MedMCQA's hub layout: missing column(s) {missing}")
    frame = frame[list(MEDMCQA_COLUMNS)].copy()
    frame["cop"] = frame["cop"].astype("int64") + 1
    text = frame.to_json(orient="records", lines=True)
    out.write_bytes(text.encode("utf-8") if text.endswith("\n") else (text + "\n").encode("utf-8"))


CONVERSIONS: dict[str, Callable[[Path, Path], None]] = {
    "medmcqa_parquet_to_jsonl": medmcqa_parquet_to_jsonl,
}


def convert(name: str, source: Path, out: Path) -> None:
    if name not in CONVERSIONS:
        raise ValueError(f"unknown conversion {name!r}; known: {', '.join(CONVERSIONS)}")
    CONVERSIONS[name](source, out)
