"""``medssr``: one command, a sub-command per job. Each sub-command lives in its own module
``medssr_nemo.cli.<name>`` with ``main(argv) -> int``, imported only when used."""

from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "run": "the whole MedSSR pipeline in one resumable run directory, with a report",
    "train": "GRPO on a file of question records",
    "config": "show the resolved config ('medssr config show [overrides]')",
    "synth": "synthesize questions from a knowledge base",
    "label": "pseudo-label questions by majority vote of the policy",
    "data": "the data: 'medssr data download', 'medssr data status', 'medssr data real' (training pools)",
    "eval": "evaluate a policy on the benchmark suite",
    "launch": "print or run the torchrun/srun command a config implies",
    "plugins": "list registered plugins of every kind",
}


def _usage() -> str:
    lines = ["usage: medssr <command> [--config NAME|PATH] [key=value ...]", "", "commands:"]
    lines += [f"  {name:<8} {text}" for name, text in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"medssr: unknown command {command!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    try:
        module = importlib.import_module(f"medssr_nemo.cli.{command}")
    except ModuleNotFoundError as err:
        if err.name == f"medssr_nemo.cli.{command}":
            print(f"medssr: command {command!r} is not available in this version", file=sys.stderr)
            return 2
        raise
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
