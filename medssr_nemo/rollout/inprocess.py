"""The in-process rollout engine: KV-cached batched sampling on the policy's own module.

The whole hot path is here, gpt-fast style. Where its speed comes from:

1. One batched prefill of left-padded prompts (attention mask + position ids), logits kept for the
   last position only, then one decode step per new token over the model's KV cache. Rows with
   the same prompt (a GRPO group, the n votes of a pseudo-label) share one prefill row whose KV
   cache is then copied to each of them (``share_prefill``, dynamic cache): with 4 samples per
   prompt this removes three quarters of the prefill.
2. Sampling for the whole batch in one vectorised call (``sampling.sample_next_tokens``).
3. Finished rows leave the batch (``cache="dynamic"``): the cache drops their rows, so a long tail
   of a few unfinished samples costs a few rows, not the whole batch (``drop_finished=False``
   turns this off, to measure it).
4. Optional, for GPUs: ``cache="static"`` (preallocated KV, lengths bucketed to 256) with
   ``compile=True`` compiles the decode step (``mode="reduce-overhead"``: CUDA graphs), which
   removes the per-kernel launch cost that bounds eager decoding of small models. Static rows
   stay in the batch after they finish so the graph keeps its shape.

Determinism: row i's randomness is one uniform per step from a CPU generator seeded with
``seeds[i]``, so a (prompt, seed, weights) triple gives the same tokens in any batch, up to
floating-point differences in the logits themselves (none for the float32 tiny models in the
tests; in bf16 on GPU a different batch shape can pick different kernels and, rarely, flip a
token whose two candidates are within rounding of each other).
"""

from __future__ import annotations

import copy
import inspect
from typing import Any, Iterable, Literal, Sequence

import torch

from medssr_nemo.rollout.interfaces import Completion, RolloutEngine, SamplingParams
from medssr_nemo.rollout.sampling import row_uniforms, sample_next_tokens

CacheKind = Literal["dynamic", "static"]
STATIC_CACHE_BUCKET = 256  # static KV lengths are rounded up to this so compiled graphs are reused


class InProcessEngine(RolloutEngine):
    """Samples from ``model`` (a transformers causal LM) in this process.

    ``model`` may be the very module the policy backend trains: then weights are shared, and
    ``update_weights`` with the trainer's own tensors only bumps the version. If ``device`` or
    ``dtype`` differ from the model's, the engine works on its own converted copy instead, so the
    caller's module is never moved or cast. ``eos_token_ids=None`` stops on the EOS ids of the
    tokenizer and the model's generation config; ``()`` never stops on EOS (benchmarks).
    ``drop_finished=False`` keeps finished rows computing (only to measure what dropping saves).
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        max_batch_size: int = 64,
        cache: CacheKind = "dynamic",
        compile: bool = False,
        drop_finished: bool = True,
        share_prefill: bool = True,
        eos_token_ids: Sequence[int] | None = None,
    ) -> None:
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
        if cache not in ("dynamic", "static"):
            raise ValueError(f"cache must be 'dynamic' or 'static', got {cache!r}")
        if compile and cache != "static":
            raise ValueError("compile=True needs cache='static' (compiled graphs need fixed shapes)")
        param = next(model.parameters())
        target_device = _normalise_device(device) if device is not None else param.device
        target_dtype = _parse_dtype(dtype) if dtype is not None else param.dtype
        if (target_device, target_dtype) != (param.device, param.dtype):
            model = copy.deepcopy(model).to(device=target_device, dtype=target_dtype)
        self.model = model
        self.tokenizer = tokenizer
        self.device = target_device
        self.max_batch_size = max_batch_size
        self.cache_kind: CacheKind = cache
        self.drop_finished = drop_finished and cache == "dynamic"
        self.share_prefill = share_prefill and cache == "dynamic"
        self.eos_token_ids = tuple(_default_eos_ids(model, tokenizer) if eos_token_ids is None else eos_token_ids)
        self.pad_token_id = _first_not_none(tokenizer.pad_token_id, *self.eos_token_ids, 0)
        self._version = 0
        self._static_cache: tuple[tuple[int, int], Any] | None = None
        self.last_update: dict[str, int] = {"tensors": 0, "copied": 0}
        # transformers renamed ``past_key_values`` to ``cache`` during 5.x; accept either
        forward_parameters = inspect.signature(model.forward).parameters
        self._cache_kwarg = "cache" if "cache" in forward_parameters else "past_key_values"
        # transformers 4.x derives the write slot from ``cache.get_seq_length()`` unless given
        # ``cache_position``, and its StaticCache counts the non-zero keys of row 0 only: a
        # left-padded row 0 whose pad token embeds to zero reads as shorter, so decode steps would
        # overwrite prompt slots. 5.x dropped the argument; pass it where the model takes it.
        self._pass_cache_position = "cache_position" in forward_parameters
        self._decode_forward = model.forward
        self._cuda_graphs = compile and self.device.type == "cuda"
        if compile:
            self._decode_forward = torch.compile(
                model.forward, mode="reduce-overhead" if self._cuda_graphs else None, dynamic=False
            )

    # ---- RolloutEngine ------------------------------------------------------------------------

    @property
    def weight_version(self) -> int:
        return self._version

    def generate(
        self, prompt_token_ids: Sequence[Sequence[int]], sampling: SamplingParams, seeds: Sequence[int]
    ) -> list[Completion]:
        prompts = [list(map(int, p)) for p in prompt_token_ids]
        if len(seeds) != len(prompts):
            raise ValueError(f"generate: got {len(prompts)} prompts but {len(seeds)} seeds (one per prompt)")
        for i, prompt in enumerate(prompts):
            if not prompt:
                raise ValueError(f"generate: prompt {i} is empty (needs at least one token)")
        # Similar lengths share a batch, so left padding wastes little; results go back in order.
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        results: list[Completion | None] = [None] * len(prompts)
        was_training = self.model.training
        self.model.eval()  # a shared policy module may be in train mode (dropout)
        try:
            for start in range(0, len(order), self.max_batch_size):
                chunk = order[start:start + self.max_batch_size]
                completions = self._generate_batch([prompts[i] for i in chunk], sampling, [seeds[i] for i in chunk])
                for i, completion in zip(chunk, completions):
                    results[i] = completion
        finally:
            self.model.train(was_training)
        return results  # type: ignore[return-value]

    def update_weights(self, named_tensors: Iterable[tuple[str, torch.Tensor]]) -> int:
        """Copy HF-named tensors into the model (tied aliases such as ``lm_head.weight`` accepted);
        a tensor that already is the model's storage (shared module) is not copied. On a bad name
        or shape it raises before bumping the version; earlier tensors of the call stay loaded."""
        targets = self.model.state_dict(keep_vars=True)
        received = copied = 0
        with torch.no_grad():
            for name, tensor in named_tensors:
                received += 1
                target = targets.get(name)
                if target is None:
                    examples = ", ".join(list(targets)[:3])
                    raise ValueError(
                        f"update_weights: unknown tensor name {name!r}; the engine's "
                        f"{type(self.model).__name__} has {len(targets)} HF names such as {examples}"
                    )
                if tuple(tensor.shape) != tuple(target.shape):
                    raise ValueError(
                        f"update_weights: tensor {name!r} has shape {tuple(tensor.shape)}, "
                        f"the model expects {tuple(target.shape)}"
                    )
                if tensor.data_ptr() != target.data_ptr():
                    target.data.copy_(tensor)
                    copied += 1
        self.last_update = {"tensors": received, "copied": copied}  # for logs: a shared module copies 0
        self._version += 1
        return self._version

    def sleep(self) -> None:
        """Drop the kept static KV cache and return cached CUDA blocks (weights stay: they are the
        policy's own). The next ``generate`` allocates a new cache (and records new CUDA graphs)."""
        self._static_cache = None
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    # ---- the hot path ---------------------------------------------------------------------------

    # no_grad, not inference_mode: a shared training module must never end up holding inference
    # tensors (e.g. a rotary cache refreshed during generation) that its next backward would refuse
    @torch.no_grad()
    def _generate_batch(self, prompts: list[list[int]], sp: SamplingParams, seeds: list[int]) -> list[Completion]:
        device, batch, new_tokens = self.device, len(prompts), sp.max_new_tokens
        lengths = torch.tensor([len(p) for p in prompts], device=device)
        prompt_width = max(len(p) for p in prompts)
        self._check_length(prompt_width, new_tokens)
        static = self.cache_kind == "static"
        cache_len = _round_up(prompt_width + new_tokens, STATIC_CACHE_BUCKET) if static else prompt_width + new_tokens

        input_ids = torch.full((batch, prompt_width), self.pad_token_id, dtype=torch.long)
        mask = torch.ones((batch, cache_len), dtype=torch.long)  # future slots: the causal mask hides them
        for row, prompt in enumerate(prompts):
            input_ids[row, prompt_width - len(prompt):] = torch.tensor(prompt)
            mask[row, : prompt_width - len(prompt)] = 0
        input_ids, mask = input_ids.to(device), mask.to(device)
        prefill_positions = (mask[:, :prompt_width].cumsum(-1) - 1).clamp(min=0)

        uniforms = row_uniforms(seeds, new_tokens).to(device) if sp.temperature > 0 else None
        allowed = self._allowed_mask(sp.allowed_token_ids)
        stop_ids = torch.tensor(sorted({*self.eos_token_ids, *sp.stop_token_ids}), dtype=torch.long, device=device)

        kv_cache = self._new_cache(batch, cache_len)
        first_rows, row_to_first = _distinct_prompts(prompts)
        if self.share_prefill and len(first_rows) < batch:
            pick = torch.tensor(first_rows, device=device)
            logits = self._forward(input_ids[pick], mask[pick, :prompt_width], prefill_positions[pick], kv_cache,
                                   slots=(0, prompt_width))
            spread = torch.tensor(row_to_first, device=device)
            kv_cache.batch_select_indices(spread)   # each row gets a copy of its prompt's cache
            logits = logits[spread]
        else:
            logits = self._forward(input_ids, mask if static else mask[:, :prompt_width], prefill_positions, kv_cache,
                                   slots=(0, prompt_width))

        out_tokens = torch.full((batch, new_tokens), self.pad_token_id, dtype=torch.long, device=device)
        out_logprobs = torch.zeros((batch, new_tokens), dtype=torch.float32, device=device)
        num_tokens = torch.full((batch,), new_tokens, dtype=torch.long, device=device)
        rows = torch.arange(batch, device=device)   # original row of each live batch row
        done = torch.zeros(batch, dtype=torch.bool, device=device)
        for step in range(new_tokens):
            tokens, logprobs = sample_next_tokens(
                logits, temperature=sp.temperature, top_k=sp.top_k, top_p=sp.top_p,
                uniforms=None if uniforms is None else uniforms[rows, step], allowed_mask=allowed,
            )
            out_tokens[rows, step] = tokens
            out_logprobs[rows, step] = logprobs
            stopped = torch.isin(tokens, stop_ids) & ~done
            num_tokens[rows] = torch.where(stopped, step + 1, num_tokens[rows])
            done |= stopped
            if step + 1 == new_tokens:
                break
            if self.drop_finished:  # finished rows leave the batch and the cache
                live = (~done).nonzero().squeeze(1)
                if live.numel() == 0:
                    break
                if live.numel() < done.numel():
                    kv_cache.batch_select_indices(live)
                    rows, done, tokens, lengths, mask = rows[live], done[live], tokens[live], lengths[live], mask[live]
            elif bool(done.all()):  # static: rows stay so a compiled graph keeps its shape
                break
            step_mask = mask if static else mask[:, : prompt_width + step + 1]
            logits = self._forward(tokens.unsqueeze(1), step_mask, (lengths + step).unsqueeze(1), kv_cache,
                                   slots=(prompt_width + step, prompt_width + step + 1), decode=True)

        return self._completions(prompts, out_tokens.cpu(), out_logprobs.cpu(), num_tokens.cpu(), stop_ids.cpu())

    def _forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, position_ids: torch.Tensor,
                 kv_cache: Any, slots: tuple[int, int], decode: bool = False) -> torch.Tensor:
        """Logits (B, V) of the last position, the cache updated in place at cache ``slots``
        [start, stop). Only decode steps take the compiled path: prefill shapes vary with every
        batch of prompts."""
        forward = self._decode_forward if decode else self.model.forward
        if decode and self._cuda_graphs:
            torch.compiler.cudagraph_mark_step_begin()  # the previous step's outputs are consumed
        extra: dict[str, Any] = {self._cache_kwarg: kv_cache}
        if self._pass_cache_position:
            extra["cache_position"] = torch.arange(*slots, device=input_ids.device)
        out = forward(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                      use_cache=True, logits_to_keep=1, **extra)
        return out.logits[:, -1]

    def _new_cache(self, batch: int, cache_len: int) -> Any:
        from transformers import DynamicCache, StaticCache

        if self.cache_kind == "dynamic":
            return DynamicCache(config=self.model.config)
        # Reuse the static cache while the shape holds: its tensors keep their addresses, so the
        # CUDA graphs recorded for them are replayed instead of recorded again on every call.
        if self._static_cache is not None and self._static_cache[0] == (batch, cache_len):
            self._static_cache[1].reset()
            return self._static_cache[1]
        self._static_cache = None  # free the old one before allocating the next
        cache = StaticCache(config=self.model.config, max_cache_len=cache_len)
        self._static_cache = ((batch, cache_len), cache)
        return cache

    def _allowed_mask(self, allowed_ids: tuple[int, ...] | None) -> torch.Tensor | None:
        if allowed_ids is None:
            return None
        vocab = self.model.get_output_embeddings().weight.shape[0]
        bad = [t for t in allowed_ids if not 0 <= t < vocab]
        if not allowed_ids or bad:
            raise ValueError(f"sampling.allowed_token_ids must be non-empty ids in [0, {vocab}); got bad ids {bad}")
        mask = torch.zeros(vocab, dtype=torch.bool, device=self.device)
        mask[torch.tensor(allowed_ids, device=self.device)] = True
        return mask

    def _check_length(self, prompt_width: int, new_tokens: int) -> None:
        limit = getattr(self.model.config, "max_position_embeddings", None)
        if limit is not None and prompt_width + new_tokens > limit:
            raise ValueError(
                f"longest prompt ({prompt_width} tokens) + max_new_tokens ({new_tokens}) exceeds the "
                f"model's max_position_embeddings={limit}; shorten prompts or lower max_new_tokens"
            )

    def _completions(self, prompts: list[list[int]], tokens: torch.Tensor, logprobs: torch.Tensor,
                     num_tokens: torch.Tensor, stop_ids: torch.Tensor) -> list[Completion]:
        stop_set = set(stop_ids.tolist())
        completions = []
        for row, prompt in enumerate(prompts):
            count = int(num_tokens[row])
            ids = tokens[row, :count].tolist()
            completions.append(Completion(
                token_ids=ids,
                text=self.tokenizer.decode(ids, skip_special_tokens=True),
                logprobs=logprobs[row, :count].tolist(),
                finish_reason="stop" if ids and ids[-1] in stop_set else "length",
                weight_version=self._version,
                prompt_token_ids=prompt,
            ))
        return completions


def _distinct_prompts(prompts: Sequence[Sequence[int]]) -> tuple[list[int], list[int]]:
    """(batch row of each distinct prompt's first occurrence, for every row the index of its
    prompt in that list)."""
    index_of: dict[tuple[int, ...], int] = {}
    first_rows, row_to_first = [], []
    for row, prompt in enumerate(prompts):
        key = tuple(prompt)
        if key not in index_of:
            index_of[key] = len(first_rows)
            first_rows.append(row)
        row_to_first.append(index_of[key])
    return first_rows, row_to_first


def _default_eos_ids(model: Any, tokenizer: Any) -> list[int]:
    ids = [tokenizer.eos_token_id]
    generation_config = getattr(model, "generation_config", None)
    configured = getattr(generation_config, "eos_token_id", None)
    ids += configured if isinstance(configured, (list, tuple)) else [configured]
    return sorted({int(i) for i in ids if i is not None})


def _first_not_none(*values: Any) -> Any:
    return next(v for v in values if v is not None)


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def _normalise_device(device: str | torch.device) -> torch.device:
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    return device


def _parse_dtype(dtype: str | torch.dtype) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    names = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16,
             "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}
    if dtype not in names:
        raise ValueError(f"unknown dtype {dtype!r}; allowed: {', '.join(names)}")
    return names[dtype]
