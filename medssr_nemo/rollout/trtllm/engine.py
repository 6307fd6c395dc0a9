"""``TensorRTLLMEngine``: the RolloutEngine contract on top of TensorRT-LLM's LLM API.

Process model (SPMD under torchrun/srun, one process per GPU): every training rank builds the
engine; only rank 0 (the leader) builds the ``tensorrt_llm.LLM``, whose Ray-orchestrated workers
sit on the training GPUs (``placement=colocated``) or on GPUs of their own
(``placement=separate``). ``generate`` gathers every rank's prompts to the leader, runs them there
and scatters the completions back; ``update_weights`` runs the refit protocol of ``refit.py`` on
every rank (each colocated rank contributes IPC handles of its own GPU). One LLM instance with
``tensor_parallel_size`` GPUs serves the whole job: data-parallel engine replicas are not built.

Sampling follows the interface: one ``SamplingParams`` per prompt carrying its seed; ``end_id=-1``
with the EOS ids as ``stop_token_ids`` and ``include_stop_str_in_output=True`` (as verl does) so
the EOS token stays in the output and its logprob aligns with training; ``detokenize=False`` and
the text decoded here with the policy's tokenizer. Logprobs come from ``logprobs=1``, taking the
entry of the sampled token. TensorRT-LLM's default logprobs are computed from the unprocessed
logits, so they match the interface's convention (log_softmax(logits / T)) only at temperature
1.0 (GRPO rollouts' default); at other temperatures the engine says so once in the log.

NEVER RUN against a real TensorRT-LLM (see ``api.py``): the tests run it on the fake in
``tests/fakes/tensorrt_llm``.
"""

from __future__ import annotations

import logging
from typing import Any, Iterable, Sequence

import torch

from medssr_nemo.rollout.interfaces import Completion, RolloutEngine, SamplingParams
from medssr_nemo.rollout.trtllm.api import (WORKER_EXTENSION, Capabilities, check_capabilities,
                                            import_trtllm, probe)
from medssr_nemo.rollout.trtllm.logits import AllowedTokensProcessor
from medssr_nemo.rollout.trtllm.options import KV_CACHE_TAG, TrtllmOptions
from medssr_nemo.rollout.trtllm.refit import (BroadcastTransport, Collective, IpcTransport, LLMRpc,
                                              Refitter, SingleProcess, StaleWeightsError, TorchDistributed,
                                              make_refit_group)

log = logging.getLogger(__name__)

_DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32, "auto": None}


def default_collective() -> Collective:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        return TorchDistributed()
    return SingleProcess()


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
        self.collective = collective or default_collective()
        self.rank = rank if rank is not None else _current_rank()
        self.engine_dtype = _DTYPES[options.dtype]
        self.device_index = options.device_index if options.device_index is not None else (
            torch.cuda.current_device() if torch.cuda.is_available() else 0)
        self._version = 0
        self._last_attempt = 0
        self._stale = options.load_format == "dummy"   # random weights until the first refit
        self._asleep: list[str] = []
        self._warned_temperature = False
        self.llm = None
        self.rpc: LLMRpc | None = None
        if self.rank == 0:
            self.llm = self.trtllm.LLM(**self.llm_kwargs(model_path))
            self.rpc = LLMRpc(self.llm)
        self.refitter = Refitter(self.rpc, self._make_transport(), bucket_bytes=options.bucket_mb * 2**20,
                                 verify_tensors=options.verify_tensors, engine_dtype=self.engine_dtype,
                                 device=self._refit_device(), collective=self.collective)

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
                kwargs["sleep_config"] = self.trtllm.llmapi.llm_args.SleepConfig()
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
        if self.rank != 0:
            return BroadcastTransport(None, None)
        opts = self.options
        world = 1 + opts.tensor_parallel_size * opts.pipeline_parallel_size
        joining = self.rpc.start("medssr_init_broadcast_group", opts.refit_master_addr,
                                 opts.refit_master_port, world, opts.refit_backend)
        group = make_refit_group(opts.refit_master_addr, opts.refit_master_port, 0, world, opts.refit_backend)
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
        if self.rpc is not None:
            weight_tags = [t for t in self._asleep if t != KV_CACHE_TAG]
            if weight_tags:  # the weights' memory must exist before they can be written
                self.rpc.call("wakeup", weight_tags)
                self._asleep = [t for t in self._asleep if t not in weight_tags]
        self.refitter.refit(named_tensors, version)
        self._version = version
        self._stale = False
        return version

    def sleep(self) -> None:
        if not self.options.colocated or self.rpc is None or self._asleep:
            return
        tags = list(self.options.sleep_tags)
        self.rpc.call("sleep", tags)
        self._asleep = tags

    def wake(self) -> None:
        if self.rpc is None or not self._asleep:
            return
        self.rpc.call("wakeup", list(self._asleep))
        self._asleep = []

    def generate(self, prompt_token_ids: Sequence[Sequence[int]], sampling: SamplingParams,
                 seeds: Sequence[int]) -> list[Completion]:
        if len(seeds) != len(prompt_token_ids):
            raise ValueError(f"generate got {len(prompt_token_ids)} prompts but {len(seeds)} seeds")
        if self._stale:
            raise StaleWeightsError(
                "refusing to generate: the engine's weights are not a verified refit of the policy "
                "(the last update_weights failed, or load_format=dummy and no refit happened yet)")
        request = ([list(map(int, p)) for p in prompt_token_ids], sampling, [int(s) for s in seeds])
        gathered = self.collective.gather_to_leader(request)
        results = None
        if self.rank == 0:
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
        self.wake()
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
            if token not in entry:
                raise RuntimeError(f"tensorrt_llm logprobs lack the sampled token {token}")
            entry = entry[token]
        values.append(float(getattr(entry, "logprob", entry)))
    return values


def _current_rank() -> int:
    import torch.distributed as dist

    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
