"""Atomic, resumable checkpoints of a GRPO run: ``<output_dir>/checkpoints/step_<N>/`` holds the
backend's own state (``policy/``) and ``trainer_state.json``; ``latest`` names the newest
complete one. A checkpoint directory appears only once fully written (temp dir + rename), so a
kill mid-save leaves the previous checkpoint as the resume point."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from medssr_nemo.artifacts import replace_directory, write_text_atomic
from medssr_nemo.policy.interfaces import PolicyBackend


class CheckpointManager:
    def __init__(self, output_dir: str | os.PathLike, keep: int = 2) -> None:
        self.root = Path(output_dir) / "checkpoints"
        self.keep = keep

    def latest(self) -> Path | None:
        pointer = self.root / "latest"
        if not pointer.exists():
            return None
        path = self.root / pointer.read_text().strip()
        if not (path / "trainer_state.json").exists():
            raise FileNotFoundError(f"{pointer} names {path}, which is not a complete checkpoint")
        return path

    def save(self, step: int, policy: PolicyBackend, trainer_state: dict[str, Any], is_main: bool = True) -> Path:
        name = f"step_{step:06d}"
        final = self.root / name
        tmp = self.root / f".{name}.tmp"
        if is_main:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
        policy.save(tmp / "policy")  # collective for distributed backends: every rank calls it
        if not is_main:
            return final
        (tmp / "trainer_state.json").write_text(json.dumps(trainer_state, indent=2, sort_keys=True))
        replace_directory(tmp, final)
        write_text_atomic(self.root / "latest", name)
        self._prune()
        return final

    def load(self, path: Path, policy: PolicyBackend) -> dict[str, Any]:
        policy.load(path / "policy")
        return json.loads((path / "trainer_state.json").read_text())

    def _prune(self) -> None:
        steps = sorted(p for p in self.root.glob("step_*") if p.is_dir())
        for old in steps[: -self.keep]:
            shutil.rmtree(old, ignore_errors=True)
