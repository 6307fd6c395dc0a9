"""Every rank generates: pseudo-labelling and evaluation split their prompts over the ranks,
as GRPO's training rollouts already are, so all of a node's GPUs sample instead of rank 0's.

``every_rank_generates()`` marks a block that every rank runs with the same inputs (the pipeline
runs its labelling and evaluation steps so, see pipeline/runner.py); inside it, ``split(engine)``
wraps the engine that labelling or evaluation builds in a ``RankSplitEngine``: each ``generate``
call samples prompts ``rank::world`` on this rank's engine and gathers the completions back into
the caller's order on every rank. Each sample's randomness is its own seed (rollout/interfaces.py),
so the tokens are those one process would sample. Outside the block (training rollouts, a
single process) ``split`` returns the engine unchanged.

``rank_scratch(out, main)`` gives the other ranks a private copy of a step's directory, so the
same code runs everywhere (same resume decisions, same collective calls) while only the main
rank's files count. ``command_on_every_rank(out)`` is all of that for a standalone ``medssr label``
or ``medssr eval`` started by torchrun: the process group, the block, the scratch copy, and quiet
standard output on the other ranks.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import torch

from medssr_nemo import distributed
from medssr_nemo.rollout.interfaces import Completion, RolloutEngine, SamplingParams

_active = False


@contextlib.contextmanager
def every_rank_generates() -> Iterator[None]:
    """Within this block every rank runs the same labelling/evaluation code in step."""
    global _active
    previous, _active = _active, True
    try:
        yield
    finally:
        _active = previous


def split(engine: Any) -> Any:
    """``engine`` split over the ranks when inside ``every_rank_generates`` with several ranks."""
    if _active and distributed.world_size() > 1 and not isinstance(engine, RankSplitEngine):
        return RankSplitEngine(engine)
    return engine


class RankSplitEngine(RolloutEngine):
    """Round-robin shares of each ``generate`` call, gathered in order (a collective: every rank
    calls ``generate`` with the same prompts and seeds)."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine

    def generate(self, prompt_token_ids: Sequence[Sequence[int]], sampling: SamplingParams,
                 seeds: Sequence[int]) -> list[Completion]:
        rank, world = distributed.rank(), distributed.world_size()
        mine = list(range(rank, len(prompt_token_ids), world))
        local = self.engine.generate([prompt_token_ids[i] for i in mine], sampling, [seeds[i] for i in mine]) \
            if mine else []
        shares: list[Any] = [None] * world
        torch.distributed.all_gather_object(shares, local)
        out: list[Any] = [None] * len(prompt_token_ids)
        for r, share in enumerate(shares):
            for i, completion in zip(range(r, len(prompt_token_ids), world), share, strict=True):
                out[i] = completion
        return out

    def update_weights(self, named_tensors: Iterable[tuple[str, torch.Tensor]]) -> int:
        return self.engine.update_weights(named_tensors)

    @property
    def weight_version(self) -> int:
        return self.engine.weight_version

    def sleep(self) -> None:
        self.engine.sleep()

    def wake(self) -> None:
        self.engine.wake()

    def __getattr__(self, name: str) -> Any:  # tokenizer, model, ... of the wrapped engine
        return getattr(self.engine, name)


@contextlib.contextmanager
def rank_scratch(out: Path, main: bool) -> Iterator[Path]:
    """``out`` on the main rank; on the others a private copy of it (taken after the main rank
    stamped it and before anyone writes), removed afterwards."""
    distributed.barrier()
    if main:
        where = out
    else:
        where = out.parent / f".{out.name}.rank{distributed.rank()}"
        shutil.rmtree(where, ignore_errors=True)
        if out.exists():
            shutil.copytree(out, where)
        else:
            where.mkdir(parents=True)
    distributed.barrier()
    try:
        yield where
    finally:
        if not main:
            shutil.rmtree(where, ignore_errors=True)


@contextlib.contextmanager
def command_on_every_rank(out: Path) -> Iterator[Path]:
    """Where this rank writes a standalone labelling/evaluation command's files: ``out`` itself
    without torchrun (nothing else changes); under torchrun the process group is started, every
    rank samples its share, the main rank writes ``out`` and the others a scratch copy, printing
    nothing (their summaries would repeat the main rank's)."""
    if not distributed.launched_distributed():
        yield out
        return
    distributed.init_distributed()
    main = distributed.is_main()
    with every_rank_generates(), rank_scratch(Path(out), main) as where:
        if main:
            yield where
        else:
            with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet):
                yield where
    distributed.barrier()   # the main rank's files are complete before any rank returns
