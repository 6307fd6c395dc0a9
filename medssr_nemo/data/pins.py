"""Checksums recorded at first fetch for the files the manifest cannot pin (RareDis-Sub is
published only on the Hugging Face Hub, which was out of reach where the manifest was written).
They go beside the data as ``PINNED_SHA256SUMS`` (``sha256sum`` format), so any later change of
those bytes, on this machine or on a cluster the data root was copied to, is caught like a
manifest mismatch. See docs/data.md."""

from __future__ import annotations

from pathlib import Path

from medssr_nemo.artifacts import write_text_atomic

PINS_NAME = "PINNED_SHA256SUMS"


def read_pins(root: Path) -> dict[str, str]:
    """``{path under the root: sha256}`` recorded in ``root``; empty when there is no pin file."""
    pins_file = Path(root) / PINS_NAME
    if not pins_file.is_file():
        return {}
    pins = {}
    for number, line in enumerate(pins_file.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split(maxsplit=1)
        if len(parts) != 2 or len(parts[0]) != 64:
            raise ValueError(f"{pins_file}:{number}: expected '<sha256>  <path>', got {line!r}")
        pins[parts[1].strip()] = parts[0]
    return pins


def record_pin(root: Path, path: str, digest: str) -> None:
    """Record (or replace) the checksum of ``path``."""
    pins = {**read_pins(root), path: digest}
    write_text_atomic(Path(root) / PINS_NAME, "".join(f"{d}  {p}\n" for p, d in sorted(pins.items())))
