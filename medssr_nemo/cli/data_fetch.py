"""``medssr data download`` and ``medssr data status``: the manifest's files in the data root
(docs/data.md)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from medssr_nemo.cli.common import run_guarded


def _root(dest: str | None) -> tuple[Path, str]:
    from medssr_nemo.data.root import resolve_data_root

    if dest:
        return Path(dest).expanduser().resolve(), "--dest"
    chosen = resolve_data_root()
    return chosen.path, chosen.reason


def download_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="medssr data download",
        description="fetch the data files into the data root (or --dest DIR), verified against the manifest")
    parser.add_argument("--only", nargs="+", default=[], metavar="NAME",
                        help="groups (eval, train, knowledge), datasets (see `medssr data status`) or paths")
    parser.add_argument("--dest", help="download into DIR instead of the data root (then copy DIR, set MEDSSR_DATA=DIR)")
    parser.add_argument("--mirror", help="base URL of a mirror serving <host>/<path> of each source "
                                         "(default: $MEDSSR_DATA_MIRROR)")
    parser.add_argument("--retries", type=int, default=3, help="retries per source, with exponential backoff")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)

    def job() -> int:
        from medssr_nemo.data.download import download
        from medssr_nemo.data.manifest import load_manifest

        manifest = load_manifest()
        root, reason = _root(args.dest)
        entries = manifest.select(args.only)
        print(f"data root: {root} ({reason})")
        report = download(entries, root, manifest=manifest, mirror=args.mirror, progress=not args.no_progress,
                          retries=args.retries)
        for path, why in report.failed_optional:
            print(f"optional {path} not fetched: {why}")
            if path.startswith("eval/raredis_sub/"):
                print("  RareDis-Sub is on the Hugging Face Hub only; without it, RareBench stands in for it")
        print(f"{len(report.fetched)} fetched, {len(report.skipped)} already verified, "
              f"{len(report.failed_optional)} optional missing; root {root}")
        if args.dest:
            print(f"copy {root} to the machine that runs medssr and set MEDSSR_DATA to it there")
        return 0

    return run_guarded(job, parser.prog)


def status_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="medssr data status",
                                     description="every data file: verified, missing, corrupt (or present, if not pinned)")
    parser.add_argument("--only", nargs="+", default=[], metavar="NAME")
    parser.add_argument("--dest", help="check DIR instead of the data root")
    args = parser.parse_args(argv)

    def job() -> int:
        from medssr_nemo.data.download import status
        from medssr_nemo.data.manifest import load_manifest

        manifest = load_manifest()
        root, reason = _root(args.dest)
        print(f"data root: {root} ({reason})")
        states = status(root, manifest.select(args.only))
        for s in states:
            tag = s.state + (" (optional)" if s.entry.optional else "")
            print(f"  {tag:<20} {s.entry.dataset:<13} {s.entry.path}" + (f"  {s.detail}" if s.detail else ""))
        bad = [s for s in states if s.state in ("missing", "corrupt") and not s.entry.optional]
        counts = {k: sum(s.state == k for s in states) for k in ("verified", "present", "missing", "corrupt")}
        print(", ".join(f"{v} {k}" for k, v in counts.items() if v))
        if bad:
            print("fetch what is missing or corrupt with `medssr data download`", file=sys.stderr)
        return 1 if bad else 0

    return run_guarded(job, parser.prog)
