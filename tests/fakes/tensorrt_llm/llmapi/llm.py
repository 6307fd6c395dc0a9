"""FAKE of tensorrt_llm/llmapi/llm.py (1.2): ``LLM(model, ..., **kwargs)``, ``generate``,
``_collective_rpc``. Workers are in-process ``RayGPUWorker`` objects, the extension mixed in the
way ``RayWorkerWrapper`` does it, each holding the model under the engine's fused, sharded
parameter names (``tensorrt_llm._torch.models``) in float32.

``SAMPLED_TOKEN_IN_LOGPROBS``: with ``logprobs=k`` every generated token gets the top-k entries;
True adds the sampled token's entry when it is outside them, False returns the top-k only (the
behaviour differs between releases; tests switch it)."""

from __future__ import annotations

import concurrent.futures
import copy
import dataclasses
import threading
from typing import Any, List, Optional, Sequence

import torch

from tensorrt_llm._torch.models import FusedCausalLM
from tensorrt_llm.executor.ray_gpu_worker import RayGPUWorker, RayWorkerWrapper
from tensorrt_llm.llmapi.llm_args import TorchLlmArgs
from tensorrt_llm.sampling_params import SamplingParams


SAMPLED_TOKEN_IN_LOGPROBS = True


@dataclasses.dataclass
class Logprob:
    logprob: float
    rank: Optional[int] = None


@dataclasses.dataclass
class CompletionOutput:
    index: int
    text: str = ""
    token_ids: List[int] = dataclasses.field(default_factory=list)
    logprobs: Optional[list] = None
    finish_reason: Optional[str] = None


@dataclasses.dataclass
class RequestOutput:
    request_id: int
    prompt_token_ids: List[int]
    outputs: List[CompletionOutput]
    finished: bool = True


class _ModelLoader:
    def __init__(self, executor: "_PyExecutor") -> None:
        self.executor = executor

    def reload(self, model: torch.nn.Module, weights: dict, allow_partial_loading: bool = False) -> None:
        if not hasattr(model, "first_pre_reload_weights"):
            raise RuntimeError("fake: reload outside a reload cycle (pre_reload_weights hooks not run)")
        # fault injection: tensors that silently never land
        weights = {k: v for k, v in weights.items() if k not in self.executor.drop_weights}
        self.executor._log(f"reload:{len(weights)}")
        model.load_hf_weights(weights)


class _ModelEngine:
    def __init__(self, model: torch.nn.Module, executor: "_PyExecutor") -> None:
        self.model = model
        self.model_loader = _ModelLoader(executor)


class _PyExecutor:
    def __init__(self, model: torch.nn.Module, events: list, lock: threading.Lock, rank: int) -> None:
        self.model_engine = _ModelEngine(model, self)
        self.events = events
        self.lock = lock
        self.rank = rank
        self.released: set = set()
        self.drop_weights: set = set()
        self.fail_finalize = False

    def _log(self, event: str) -> None:
        with self.lock:
            self.events.append(event)

    def reset_prefix_cache(self) -> None:
        self._log("reset_prefix_cache")

    def finalize_weights(self) -> None:
        if self.fail_finalize:
            raise RuntimeError("fake: post-load hook failed")

    def release(self, tags: set) -> None:
        self.released |= set(tags)

    def materialize(self, tags: set) -> None:
        self.released -= set(tags)


class LLM:
    def __init__(self, model: str, tokenizer: Any = None, tokenizer_mode: str = "auto",
                 skip_tokenizer_init: bool = False, trust_remote_code: bool = False,
                 tensor_parallel_size: int = 1, dtype: str = "auto", revision: Optional[str] = None,
                 tokenizer_revision: Optional[str] = None, **kwargs: Any) -> None:
        known = {f.name for f in dataclasses.fields(TorchLlmArgs)}
        extra = sorted(set(kwargs) - known)
        if extra:  # the real TorchLlmArgs (pydantic) forbids extra inputs
            raise ValueError(f"Extra inputs are not permitted: {extra}")
        self.args = TorchLlmArgs(model=model, tokenizer=tokenizer, tokenizer_mode=tokenizer_mode,
                                 skip_tokenizer_init=skip_tokenizer_init, trust_remote_code=trust_remote_code,
                                 tensor_parallel_size=tensor_parallel_size, dtype=dtype, revision=revision,
                                 tokenizer_revision=tokenizer_revision, **kwargs)
        import os

        self.spawn_env = dict(os.environ)   # what the workers would inherit (tests check it)
        from transformers import AutoModelForCausalLM

        base = AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32).eval()
        if self.args.load_format == "dummy":
            with torch.no_grad():
                for param in base.parameters():
                    param.normal_(0.0, 0.02)
        self.events: list = []
        self._lock = threading.Lock()
        world = tensor_parallel_size * self.args.pipeline_parallel_size
        self.wrappers = []
        for rank in range(world):
            engine = _PyExecutor(FusedCausalLM(copy.deepcopy(base), rank % tensor_parallel_size,
                                               tensor_parallel_size, self.events), self.events, self._lock, rank)
            kwargs = {"engine": engine, "llm_args": self.args}
            if self.args.ray_worker_extension_cls:
                kwargs["ray_worker_extension_cls"] = self.args.ray_worker_extension_cls
            self.wrappers.append(RayWorkerWrapper(RayGPUWorker, kwargs, world, rank))
        self._request_id = 0

    @property
    def workers(self) -> list:
        return [w.worker for w in self.wrappers]

    # -------------------------------------------------------------- RPC
    def _collective_rpc(self, method: str, args: tuple = (), kwargs: Optional[dict] = None,
                        non_block: bool = False, unique_reply_rank: Optional[int] = None) -> list:
        if not isinstance(args, tuple):
            raise TypeError("args must be a tuple")
        with self._lock:
            self.events.append(f"rpc:{method}" + (":final" if method == "update_weights" and args == (None,) else ""))
        with concurrent.futures.ThreadPoolExecutor(len(self.wrappers)) as pool:
            futures = [pool.submit(w.call_worker_method, method, *args, **(kwargs or {})) for w in self.wrappers]
            results = [f.result() for f in futures]
        return results if unique_reply_rank is None else [results[unique_reply_rank]]

    # -------------------------------------------------------------- generation
    def generate(self, inputs: Any, sampling_params: Any = None, use_tqdm: bool = True, **_: Any) -> Any:
        single = inputs and isinstance(inputs[0], int)
        prompts: List[List[int]] = [list(inputs)] if single else [list(p) for p in inputs]
        params = sampling_params if isinstance(sampling_params, list) else [sampling_params or SamplingParams()] * len(prompts)
        if len(params) != len(prompts):
            raise ValueError("sampling_params must match inputs in length")
        for p in params:
            if not isinstance(p, SamplingParams):
                raise TypeError(f"sampling_params must be SamplingParams, got {type(p).__name__}")
            if p.detokenize and self.args.skip_tokenizer_init:
                raise ValueError("detokenize=True needs a tokenizer (skip_tokenizer_init=True)")
        worker0 = self.workers[0]
        if hasattr(worker0.engine.model_engine.model, "first_pre_reload_weights"):
            raise RuntimeError("fake: generate while a weight update is in progress")
        if worker0.engine.released:
            raise RuntimeError(f"fake: generate while memory is released: {sorted(t.value for t in worker0.engine.released)}")
        with self._lock:
            self.events.append(f"generate:{len(prompts)}")
        outputs = []
        for prompt, p in zip(prompts, params):
            self._request_id += 1
            outputs.append(self._generate_one(worker0.engine.model_engine.model, self._request_id, prompt, p))
        return outputs[0] if single else outputs

    @torch.no_grad()
    def _generate_one(self, model: torch.nn.Module, req_id: int, prompt: Sequence[int], p: SamplingParams) -> RequestOutput:
        generator = torch.Generator().manual_seed(p.seed or 0)
        ids = list(prompt)
        new: List[int] = []
        logprobs: list = []
        stop_ids = set(p.stop_token_ids or [])
        reason = "length"
        for _ in range(p.max_tokens):
            raw = model(torch.tensor([ids])).logits[0, -1].float()
            raw_logprobs = torch.log_softmax(raw, -1)
            logits = raw.clone().unsqueeze(0)
            if p.logits_processor is not None:
                p.logits_processor(req_id, logits, [ids[len(prompt):]], None, None)
            logits = logits[0]
            if not p.temperature:
                token = int(torch.argmax(logits))
            else:
                logits = logits / p.temperature
                if p.top_k:
                    kth = torch.topk(logits, p.top_k).values[-1]
                    logits = logits.masked_fill(logits < kth, float("-inf"))
                probs = torch.softmax(logits, -1)
                if p.top_p is not None and p.top_p < 1:
                    sorted_p, order = torch.sort(probs, descending=True)
                    keep = torch.cumsum(sorted_p, 0) - sorted_p < p.top_p
                    probs = torch.zeros_like(probs).scatter(0, order, sorted_p * keep)
                token = int(torch.multinomial(probs / probs.sum(), 1, generator=generator))
            ended = token in stop_ids or (p.end_id is not None and p.end_id >= 0 and token == p.end_id)
            keep_token = not ended or (token in stop_ids and p.include_stop_str_in_output)
            if keep_token:
                new.append(token)
                if p.logprobs is not None:
                    top = torch.topk(raw_logprobs, max(p.logprobs, 1)).indices.tolist()[:p.logprobs]
                    entry = {int(t): Logprob(float(raw_logprobs[t]), r + 1) for r, t in enumerate(top)}
                    if SAMPLED_TOKEN_IN_LOGPROBS and token not in entry:
                        entry[token] = Logprob(float(raw_logprobs[token]), None)
                    logprobs.append(entry)
            ids.append(token)
            if ended:
                reason = "stop"
                break
        out = CompletionOutput(index=0, token_ids=new, logprobs=logprobs if p.logprobs is not None else None,
                               finish_reason=reason)
        return RequestOutput(request_id=req_id, prompt_token_ids=list(prompt), outputs=[out])

    def shutdown(self) -> None:
        self.wrappers = []
