"""Before ``medssr run`` starts: the files the run reads are in the data root and verified,
fetched when missing (``--no-download``: only reported)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from medssr_nemo.data.download import DownloadError, download, licence_summary, status
from medssr_nemo.data.manifest import load_manifest, required_for_run
from medssr_nemo.data.root import resolve_data_root


def ensure_run_data(cfg: Any, *, fetch: bool = True, progress: bool = True, echo: Callable[[str], None] = print) -> Path:
    """The data root, holding every required file of the run verified. Missing or corrupt files
    are downloaded (or, with ``fetch=False``, reported in a ``DownloadError``); a missing
    optional file (RareDis-Sub) is only reported."""
    manifest = load_manifest()
    chosen = resolve_data_root()
    entries = required_for_run(cfg, manifest)
    states = status(chosen.path, entries)
    need = [s for s in states if s.state in ("missing", "corrupt")]
    required = [s for s in need if not s.entry.optional]
    if not need:
        echo(f"data: {len(states)} files verified in {chosen.path} ({chosen.reason})")
        return chosen.path
    if not fetch:
        if required:
            listing = "\n  ".join(f"{s.state:<8} {s.entry.path}" + (f" ({s.detail})" if s.detail else "")
                                  for s in required)
            names = " ".join(sorted({s.entry.dataset for s in required}))
            raise DownloadError(f"--no-download: {len(required)} file(s) this run reads are not in the data root "
                                f"{chosen.path} ({chosen.reason}):\n  {listing}\nfetch them with "
                                f"`medssr data download --only {names}` (or run without --no-download)")
        echo("data: RareDis-Sub is not in the data root; RareBench stands in for it (--no-download)")
        return chosen.path
    echo(licence_summary(manifest, {s.entry.dataset for s in need}))     # once for the whole run
    if required:
        echo(f"data: fetching {len(required)} file(s) this run reads into {chosen.path} ({chosen.reason})")
        download([s.entry for s in required], chosen.path, manifest=manifest, progress=progress, echo=echo,
                 show_licences=False)
    optional = [s.entry for s in need if s.entry.optional]
    if optional:      # one quick try: the hub may be unreachable (then RareBench stands in)
        try:
            report = download(optional, chosen.path, manifest=manifest, progress=progress, echo=echo, retries=0,
                              timeout_s=20.0, show_licences=False)
            missing = report.failed_optional
        except DownloadError as err:
            missing = [(e.path, str(err).splitlines()[0]) for e in optional]
        for path, why in missing:
            echo(f"data: optional {path} not fetched ({why}); RareBench stands in for RareDis-Sub")
    echo(f"data: the files this run reads are verified in {chosen.path}")
    return chosen.path
