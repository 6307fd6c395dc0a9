"""``TensorRTLLMEngine``: the RolloutEngine contract on top of TensorRT-LLM's LLM API.

Process model (SPMD under torchrun/srun, one process per GPU): every training rank builds the
engine object; the ranks are cut into engine groups (``engine_groups.py``) and each group's leader
builds one ``tensorrt_llm.LLM``, whose Ray-orchestrated workers sit on the group's training GPUs
(``placement=colocated``: world / (TP x PP) engines) or on GPUs of their own
(``placement=separate``: ``engine_replicas`` engines). ``generate`` gathers a group's prompts to its
leader, runs them on that group's engine and scatters the completions back, so every engine
serves its share; ``update_weights`` runs the refit protocol of ``refit.py`` on every rank (each
colocated rank contributes IPC handles of its own GPU to its group's engine).

Colocated memory follows ``colocation.py``: sleep everything after rollouts; before a refit the
trainer's optimizer state leaves the GPU and its gradients are freed, then the weights wake, the
refit runs, and the KV cache wakes last; a ledger logs each phase.

Sampling follows the interface: one ``SamplingParams`` per prompt carrying its seed; ``end_id=-1``
with the EOS ids as ``stop_token_ids`` and ``include_stop_str_in_output=True`` (as verl does) so
the EOS token stays in the output and its logprob aligns with training; ``detokenize=False`` and
the text decoded here with the policy's tokenizer. Logprobs come from ``logprobs=1``, taking the
entry of the sampled token. Some releases add the sampled token's entry when it is outside the
top-1, others return the top-1 only; a token whose entry is missing gets NaN (counted, warned
once), which the trainer treats as "no engine logprob" (the mismatch metrics and the
importance-sampling correction skip it). TensorRT-LLM's default logprobs are computed from the unprocessed
logits, so they match the interface's convention (log_softmax(logits / T)) only at temperature
1.0 (GRPO rollouts' default); at other temperatures the engine says so once in the log.

NEVER RUN against a real TensorRT-LLM (see ``api.py``): the tests run it on the fake in
``tests/fakes/tensorrt_llm``.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from typing import Any, Iterable, Iterator, Sequence

import torch

from medssr_nemo.distributed import launcher_env_cleared
from medssr_nemo.policy.interfaces import TrainerMemory
from medssr_nemo.rollout.interfaces import Completion, RolloutEngine, SamplingParams
from medssr_nemo.rollout.trtllm.api import (WORKER_EXTENSION, Capabilities, check_capabilities,
                                            import_trtllm, probe)
from medssr_nemo.rollout.trtllm.colocation import MemoryLedger
from medssr_nemo.rollout.trtllm.engine_groups import (EngineGroup, GroupCollective, engine_groups,
                                                      engine_visible_devices, group_of, publish_refit_addresses)
from medssr_nemo.rollout.trtllm.fused_names import check_architecture
from medssr_nemo.rollout.trtllm.logits import AllowedTokensProcessor
from medssr_nemo.rollout.trtllm.options import KV_CACHE_TAG, TrtllmOptions
from medssr_nemo.rollout.trtllm.refit import (BroadcastTransport, Collective, IpcTransport, LLMRpc,
                                              Refitter, SingleProcess, StaleWeightsError, make_refit_group)

log = logging.getLogger(__name__)

_DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32, "auto": None}


# How each memory tag comes back from sleep (TensorRT-LLM's SleepConfig.restore_modes, keyed by
# tag value, modes by RestoreMode name). Said here rather than left to the release's default: the
# KV cache is discarded (its blocks refill with the next requests, and the prefix cache is reset
# after every refit anyway); every tag not listed, weights included, is copied back from host
# memory (TensorRT-LLM picks PINNED or CPU), since a refit need not write every buffer they hold.
RESTORE_MODES: dict[str, str] = {KV_CACHE_TAG: "NONE"}


def job_groups(options: TrtllmOptions, world_size: int) -> list[EngineGroup]:
    """The engine groups of a job of ``world_size`` training ranks (see ``engine_groups.py``)."""
    if options.colocated:
        return engine_groups(world_size, options.engine_gpus)
    if world_size % options.engine_replicas:
        raise ValueError(f"rollout.options.engine_replicas={options.engine_replicas} does not divide the "
                         f"{world_size} training ranks")
    return engine_groups(world_size, world_size // options.engine_replicas)


def default_collective(groups: list[EngineGroup], rank: int) -> Collective:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        return GroupCollective(groups, rank)
    return SingleProcess()


def _world_size() -> int:
    import torch.distributed as dist

    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


class TensorRTLLMEngine(RolloutEngine):
    def __init__(self, model_path: str, tokenizer: Any, options: TrtllmOptions, *, max_batch_size: int = 64,
                 eos_token_ids: Sequence[int] | None = None, trtllm: Any = None,
                 collective: Collective | None = None, rank: int | None = None) -> None:
        # TensorRT-LLM first: without it nothing else matters, and the error names the container
        self.trtllm = trtllm if trtllm is not None else import_trtllm()
        self.capabilities: Capabilities = probe(self.trtllm)
        check_capabilities(self.capabilities, colocated=options.colocated)
        self.options = options
        self.tokenizer = tokenizer
        self.max_batch_size = options.max_batch_size or max_batch_size
        eos = tokenizer.eos_token_id if eos_token_ids is None else eos_token_ids
        self.eos_token_ids = tuple(eos if isinstance(eos, (list, tuple)) else [eos])
        self.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos_token_ids[0]
        self.rank = rank if rank is not None else _current_rank()
        self.groups = job_groups(options, _world_size())
        self.group = group_of(self.rank, self.groups)
        self.collective = collective or default_collective(self.groups, self.rank)
        self.is_leader = self.rank == self.group.leader
        # separate GPUs refit by broadcast from each leader's own store: every leader publishes
        # where it listens (an all-gather over the job's group, so all ranks hold one table)
        self.refit_addresses: list[str] = [] if options.colocated else publish_refit_addresses(
            self.groups, self.rank, options.refit_master_addr)
        self.engine_dtype = _DTYPES[options.dtype]
        self.device_index = options.device_index if options.device_index is not None else (
            torch.cuda.current_device() if torch.cuda.is_available() else 0)
        self.model_type = _model_type(model_path)
        self._version = 0
        self._last_attempt = 0
        self._stale = options.load_format == "dummy"   # random weights until the first refit
        self._asleep: list[str] = []
        self._warned_temperature = False
        self.missing_logprobs = 0                      # tokens whose logprob the engine did not return
        self.trainer_memory: TrainerMemory | None = None
        self.ledger = MemoryLedger()
        self.llm = None
        self.rpc: LLMRpc | None = None
        if self.is_leader:
            # TensorRT-LLM spawns its workers now: they must not inherit this srun task's PMI/Slurm
            # variables (their MPI would try to join the training job's world)
            with launcher_env_cleared() as removed, self._engine_devices():
                if removed:
                    log.info("starting tensorrt_llm workers without %d Slurm/PMI variables", len(removed))
                self.llm = self.trtllm.LLM(**self.llm_kwargs(model_path))
            self.rpc = LLMRpc(self.llm)
        self.refitter = Refitter(self.rpc, self._make_transport(), bucket_bytes=options.bucket_mb * 2**20,
                                 verify_tensors=options.verify_tensors, engine_dtype=self.engine_dtype,
                                 device=self._refit_device(), collective=self.collective,
                                 model_type=self.model_type, engine_tp=options.tensor_parallel_size)

    @contextlib.contextmanager
    def _engine_devices(self) -> Iterator[None]:
        """While the ``LLM`` starts its workers, ``CUDA_VISIBLE_DEVICES`` shows only this engine
        group's GPUs (colocated, several engines per node), so each engine's Ray workers land on its
        own block. This process's CUDA context is already made: only the workers see the change."""
        if not (self.options.colocated and len(self.groups) > 1):
            yield
            return
        previous = os.environ.get("CUDA_VISIBLE_DEVICES")
        local = int(os.environ.get("LOCAL_RANK", self.device_index))
        os.environ["CUDA_VISIBLE_DEVICES"] = engine_visible_devices(self.group, self.rank, local, previous)
        log.info("tensorrt_llm engine %d starts on CUDA_VISIBLE_DEVICES=%s", self.group.index,
                 os.environ["CUDA_VISIBLE_DEVICES"])
        try:
            yield
        finally:
            if previous is None:
                os.environ.pop("CUDA_VISIBLE_DEVICES", None)
            else:
                os.environ["CUDA_VISIBLE_DEVICES"] = previous

    def attach_trainer_memory(self, memory: TrainerMemory | None) -> None:
        """Let a colocated engine move the trainer's optimizer state and gradients out of the way
        around refits (``colocation.py``): the policy's declared ``TrainerMemory``."""
        if not self.options.colocated:
            return
        self.trainer_memory = memory
        if memory is None:
            log.warning("colocated tensorrt_llm engine: the policy declares no trainer memory to offload "
                        "(Colocatable.trainer_memory); the trainer's state stays on the GPU during refits")

    def _awake(self) -> tuple[str, ...]:
        return tuple(t for t in self.options.sleep_tags if t not in self._asleep)

    def _record(self, phase: str) -> None:
        if self.options.colocated:
            # the leader asks its engine's workers what their GPUs hold (one RPC, every worker)
            workers = self.rpc.call("medssr_memory") if self.rpc is not None else []
            self.ledger.record(phase, self._awake(), self.trainer_memory, workers)

    # ------------------------------------------------------------------ construction
    def llm_kwargs(self, model_path: str) -> dict[str, Any]:
        """Arguments of ``tensorrt_llm.LLM`` (TorchLlmArgs names of the 1.2 LLM API)."""
        opts = self.options
        kv_cache_config = self.trtllm.llmapi.KvCacheConfig(
            enable_block_reuse=opts.enable_prefix_caching,
            free_gpu_memory_fraction=opts.free_gpu_memory_fraction)
        kwargs: dict[str, Any] = dict(
            model=model_path,
            tensor_parallel_size=opts.tensor_parallel_size,
            pipeline_parallel_size=opts.pipeline_parallel_size,
            dtype=opts.dtype,
            skip_tokenizer_init=True,             # token ids in, token ids out
            kv_cache_config=kv_cache_config,
            max_batch_size=self.max_batch_size,
            orchestrator_type="ray",
            ray_worker_extension_cls=WORKER_EXTENSION,
            load_format=opts.load_format,
        )
        if opts.max_seq_len is not None:
            kwargs["max_seq_len"] = opts.max_seq_len
        if opts.colocated:
            if self.capabilities.sleep_kwarg == "sleep_config":
                kwargs["sleep_config"] = self.trtllm.llmapi.llm_args.SleepConfig(restore_modes=dict(RESTORE_MODES))
            else:
                kwargs["enable_sleep"] = True
        kwargs.update(opts.llm_kwargs)
        return kwargs

    def _refit_device(self) -> torch.device | None:
        if not torch.cuda.is_available():
            return None
        return torch.device("cuda", self.device_index)

    def _make_transport(self) -> Any:
        if self.options.colocated:
            from importlib import import_module

            utils = import_module(f"{self.trtllm.__name__}._torch.utils")
            return IpcTransport(utils.get_device_uuid(self.device_index), self.collective)
        if not self.is_leader:
            return BroadcastTransport(None, None)
        opts = self.options
        world = 1 + opts.engine_gpus
        host = self.refit_addresses[self.group.index]
        port = opts.refit_master_port + self.group.index
        joining = self.rpc.start("medssr_init_broadcast_group", host, port, world, opts.refit_backend)
        group = make_refit_group(host, port, 0, world, opts.refit_backend)
        joining.result(timeout=600)
        return BroadcastTransport(group, self._refit_device() or "cpu")

    # ------------------------------------------------------------------ RolloutEngine
    @property
    def weight_version(self) -> int:
        return self._version

    def update_weights(self, named_tensors: Iterable[tuple[str, torch.Tensor]]) -> int:
        # a fresh number for every attempt, so no report left from a failed one can pass the check
        version = self._last_attempt = max(self._version, self._last_attempt) + 1
        self._stale = True
        if self.options.colocated:
            if self.trainer_memory is not None:
                self.trainer_memory.release()
                self._record("trainer state offloaded")
            self._wake_tags([t for t in self._asleep if t != KV_CACHE_TAG], "engine weights awake")
        self.refitter.refit(named_tensors, version)
        self._version = version
        self._stale = False
        self._record("refit done")
        self._wake_tags([t for t in self._asleep if t == KV_CACHE_TAG], "engine KV cache awake")
        return version

    def _wake_tags(self, tags: list[str], phase: str) -> None:
        """Wake ``tags`` (the weights' memory must exist before a refit writes it; the KV cache
        comes last, after the trainer has moved its optimizer state out)."""
        if not tags:
            return
        if self.rpc is not None:
            self.rpc.call("wakeup", tags)
        self._asleep = [t for t in self._asleep if t not in tags]
        self._record(phase)

    def sleep(self) -> None:
        if not self.options.colocated or self._asleep:
            return
        tags = list(self.options.sleep_tags)
        if self.rpc is not None:
            self.rpc.call("sleep", tags)
        self._asleep = tags
        self._record("engine asleep")
        if self.trainer_memory is not None:
            self.trainer_memory.restore()
            self._record("trainer state on GPU")

    def wake(self) -> None:
        if not self._asleep:
            return
        self._wake_tags([t for t in self._asleep if t != KV_CACHE_TAG], "engine weights awake")
        self._wake_tags(list(self._asleep), "engine KV cache awake")

    def generate(self, prompt_token_ids: Sequence[Sequence[int]], sampling: SamplingParams,
                 seeds: Sequence[int]) -> list[Completion]:
        if len(seeds) != len(prompt_token_ids):
            raise ValueError(f"generate got {len(prompt_token_ids)} prompts but {len(seeds)} seeds")
        if self._stale:
            raise StaleWeightsError(
                "refusing to generate: the engine's weights are not a verified refit of the policy "
                "(the last update_weights failed, or load_format=dummy and no refit happened yet)")
        self.wake()
        request = ([list(map(int, p)) for p in prompt_token_ids], sampling, [int(s) for s in seeds])
        gathered = self.collective.gather_to_leader(request)
        results = None
        if self.is_leader:
            assert gathered is not None
            flat_prompts = [p for prompts, _, _ in gathered for p in prompts]
            flat_seeds = [s for _, _, seeds_ in gathered for s in seeds_]
            samplings = [sp for prompts, sp, _ in gathered for _ in prompts]
            completions = self._generate_here(flat_prompts, samplings, flat_seeds)
            results, start = [], 0
            for prompts, _, _ in gathered:
                results.append(completions[start:start + len(prompts)])
                start += len(prompts)
        return self.collective.scatter_from_leader(results)

    # ------------------------------------------------------------------ leader-only work
    def _generate_here(self, prompts: list[list[int]], samplings: list[SamplingParams],
                       seeds: list[int]) -> list[Completion]:
        out: list[Completion] = []
        for start in range(0, len(prompts), self.max_batch_size):
            stop = start + self.max_batch_size
            params = [self.sampling_params(sp, seed) for sp, seed in zip(samplings[start:stop], seeds[start:stop])]
            outputs = self.llm.generate(prompts[start:stop], sampling_params=params, use_tqdm=False)
            for prompt, sampling, output in zip(prompts[start:stop], samplings[start:stop], outputs):
                out.append(self._completion(prompt, sampling, output))
        return out

    def sampling_params(self, sampling: SamplingParams, seed: int) -> Any:
        """``tensorrt_llm.SamplingParams`` for one request (field names of the 1.2 API)."""
        if sampling.temperature not in (0.0, 1.0) and not self._warned_temperature:
            log.warning("tensorrt_llm logprobs are of the unscaled distribution; with temperature %s they "
                        "differ from the policy's log_softmax(logits / T) convention", sampling.temperature)
            self._warned_temperature = True
        stop_ids = sorted(set(self.eos_token_ids) | set(sampling.stop_token_ids))
        kwargs: dict[str, Any] = dict(
            max_tokens=sampling.max_new_tokens,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            top_k=sampling.top_k if sampling.top_k > 0 else None,
            seed=seed,
            end_id=-1,                          # stop through stop_token_ids so EOS stays in the output
            pad_id=self.pad_token_id,
            stop_token_ids=stop_ids,
            include_stop_str_in_output=True,
            detokenize=False,
            logprobs=1,
        )
        if sampling.allowed_token_ids is not None:
            kwargs["logits_processor"] = AllowedTokensProcessor(sampling.allowed_token_ids)
        return self.trtllm.SamplingParams(**kwargs)

    def _completion(self, prompt: list[int], sampling: SamplingParams, output: Any) -> Completion:
        result = output.outputs[0]
        token_ids = [int(t) for t in result.token_ids]
        logprobs = _sampled_logprobs(result.logprobs, token_ids)
        missing = sum(math.isnan(v) for v in logprobs)
        if missing:
            if not self.missing_logprobs:
                log.warning("tensorrt_llm returned no logprob for %d sampled token(s) outside the top-1 (this "
                            "release does not add the sampled token); they are NaN and skipped by the "
                            "mismatch metrics and the importance-sampling correction", missing)
            self.missing_logprobs += missing
        reason = result.finish_reason
        if reason not in ("stop", "length"):
            raise RuntimeError(f"tensorrt_llm finished a request with {reason!r} (expected stop or length)")
        stop_ids = set(self.eos_token_ids) | set(sampling.stop_token_ids)
        if reason == "stop" and (not token_ids or token_ids[-1] not in stop_ids):
            raise RuntimeError("tensorrt_llm stopped a request without keeping its stop token in the output, "
                               "so its logprobs cannot align with training (include_stop_str_in_output ignored?)")
        text = self.tokenizer.decode(token_ids, skip_special_tokens=True)
        return Completion(token_ids=token_ids, text=text, logprobs=logprobs, finish_reason=reason,
                          weight_version=self._version, prompt_token_ids=list(prompt))

    def shutdown(self) -> None:
        if self.llm is not None:
            self.llm.shutdown()
            self.llm = None


def _sampled_logprobs(entries: Any, token_ids: list[int]) -> list[float]:
    """One float per generated token from TensorRT-LLM's ``TokenLogprobs`` (a list of
    ``{token_id: Logprob(logprob, rank)}`` dicts) or a plain list of floats."""
    if entries is None or len(entries) != len(token_ids):
        raise RuntimeError(f"tensorrt_llm returned {0 if entries is None else len(entries)} logprobs for "
                           f"{len(token_ids)} tokens")
    values = []
    for token, entry in zip(token_ids, entries):
        if isinstance(entry, dict):
            if token not in entry:   # a release that returns the top-k only (see the module docstring)
                values.append(math.nan)
                continue
            entry = entry[token]
        values.append(float(getattr(entry, "logprob", entry)))
    return values


def _model_type(model_path: str) -> str:
    """The checkpoint's ``config.model_type`` (where the engine fuses which tensors)."""
    from transformers import AutoConfig

    model_type = AutoConfig.from_pretrained(model_path).model_type
    check_architecture(model_type)
    return model_type


def _current_rank() -> int:
    import torch.distributed as dist

    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
