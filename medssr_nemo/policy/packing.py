"""Sequence packing: rows of a right-padded token batch laid end to end in micro-batches of at
most ``budget`` tokens, so GRPO's widely varying response lengths cost their own tokens, not
the longest row's.

* ``first_fit_decreasing`` assigns rows to bins (longest first, each into the first bin with
  room; a row longer than the budget gets a bin of its own).
* ``pack_micro_batches`` builds, per bin, one packed row ``[1, L]`` with ``cu_seqlens`` (the
  boundaries TransformerEngine's THD attention takes), per-sequence ``position_ids`` and
  ``segment_ids`` (for a block-diagonal causal mask on megatron-core's local attention), and
  keeps the bin's rows in their padded form under ``rows`` for the loss.
* ``unpack`` turns per-token values of the packed row (logprobs, entropies) back into the rows'
  ``[n, width]`` layout, differentiably; each sequence's first position holds 0, as in the
  padded convention (``policy/interfaces.py``), since in the packed row it would be predicted
  from the previous sequence's last token.

The loss therefore sees the same rows, masks and global normalisers as without packing; only
the forward pass changes shape.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch

PACKED_KEYS = ("input_ids", "position_ids", "segment_ids", "cu_seqlens", "row_index", "row_starts", "rows")


def row_lengths(attention_mask: torch.Tensor) -> list[int]:
    """Tokens per right-padded row: one past its last attended position (at least 1)."""
    width = attention_mask.shape[1]
    positions = torch.arange(1, width + 1, device=attention_mask.device)
    return [max(1, int(v)) for v in (attention_mask.bool() * positions).max(dim=1).values.tolist()]


def first_fit_decreasing(lengths: Sequence[int], budget: int) -> list[list[int]]:
    """Row indices per bin; every bin's lengths sum to at most ``budget`` unless it holds a
    single row longer than the budget. Ties keep the rows' order, so the result is deterministic
    (every rank of a model replica packs the same way)."""
    if budget < 1:
        raise ValueError(f"packing budget must be >= 1 token, got {budget}")
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    bins: list[list[int]] = []
    room: list[int] = []
    for i in order:
        for b, free in enumerate(room):
            if lengths[i] <= free:
                bins[b].append(i)
                room[b] -= lengths[i]
                break
        else:
            bins.append([i])
            room.append(budget - lengths[i])
    return bins


def _rows(batch: Mapping[str, Any], index: torch.Tensor, width: int) -> dict[str, Any]:
    """The rows ``index`` of ``batch`` cut to ``width`` positions ([B] tensors: just the rows)."""
    out: dict[str, Any] = {}
    for key, value in batch.items():
        if isinstance(value, torch.Tensor) and value.dim() >= 1 and value.shape[0] == batch["input_ids"].shape[0]:
            value = value[index.to(value.device)]
            out[key] = value[:, :width] if value.dim() == 2 else value
        else:
            out[key] = value
    return out


def pack_micro_batches(batch: Mapping[str, Any], budget: int, pad_multiple: int = 1,
                       pad_token_id: int = 0) -> list[dict[str, Any]]:
    """Packed micro-batches of ``batch`` (right-padded rows with ``attention_mask``).

    Each holds ``input_ids``/``position_ids``/``segment_ids`` of shape ``[1, L]`` (L padded to a
    multiple of ``pad_multiple``, e.g. TP for sequence parallelism; the padding is a segment of
    its own), ``cu_seqlens`` [n + 1] (int32, the padding included as a last sequence),
    ``row_index`` (which rows of ``batch``, in packing order), ``row_starts`` and ``rows`` (those
    rows, padded form, cut to their longest).
    """
    ids = batch["input_ids"]
    lengths = row_lengths(batch["attention_mask"])
    micros = []
    for members in first_fit_decreasing(lengths, budget):
        seq = [lengths[i] for i in members]
        total = sum(seq)
        padded_total = -(-total // pad_multiple) * pad_multiple
        packed = torch.full((1, padded_total), pad_token_id, dtype=ids.dtype, device=ids.device)
        positions = torch.zeros((1, padded_total), dtype=torch.long, device=ids.device)
        segments = torch.full((1, padded_total), len(members), dtype=torch.long, device=ids.device)
        starts, start = [], 0
        for n, (row, length) in enumerate(zip(members, seq)):
            packed[0, start:start + length] = ids[row, :length]
            positions[0, start:start + length] = torch.arange(length, device=ids.device)
            segments[0, start:start + length] = n
            starts.append(start)
            start += length
        if padded_total > total:
            positions[0, total:] = torch.arange(padded_total - total, device=ids.device)
        bounds = [*starts, total] + ([padded_total] if padded_total > total else [])
        index = torch.tensor(members, dtype=torch.long)
        micros.append({
            "input_ids": packed, "position_ids": positions, "segment_ids": segments,
            "cu_seqlens": torch.tensor(bounds, dtype=torch.int32, device=ids.device),
            "row_index": index, "row_starts": torch.tensor(starts, dtype=torch.long),
            "rows": _rows(batch, index, max(seq)),
        })
    return micros


def unpack(values: torch.Tensor, micro: Mapping[str, Any]) -> torch.Tensor:
    """``values`` [1, L] (or [L]) of a packed micro-batch as its rows' ``[n, width]``; padding and
    each sequence's first position hold 0."""
    flat = values.reshape(-1)
    rows = micro["rows"]
    width = rows["input_ids"].shape[1]
    starts = micro["row_starts"].to(flat.device)
    lengths = torch.tensor(row_lengths(rows["attention_mask"]), device=flat.device)
    offsets = torch.arange(width, device=flat.device)
    index = (starts[:, None] + offsets[None, :]).clamp(max=flat.numel() - 1)
    keep = (offsets[None, :] >= 1) & (offsets[None, :] < lengths[:, None])
    return torch.where(keep, flat[index], torch.zeros((), dtype=flat.dtype, device=flat.device))


def block_causal_mask(segment_ids: torch.Tensor) -> torch.Tensor:
    """[1, 1, L, L] bool, True = hidden (megatron-core's convention): a position sees earlier
    positions of its own sequence only."""
    seg = segment_ids.reshape(-1)
    length = seg.numel()
    causal = torch.ones((length, length), dtype=torch.bool, device=seg.device).tril()
    same = seg[:, None] == seg[None, :]
    return ~(causal & same)[None, None]


def packed_seq_params(micro: Mapping[str, Any]) -> Any:
    """megatron-core's ``PackedSeqParams`` (THD layout) for TransformerEngine attention."""
    from megatron.core.packed_seq_params import PackedSeqParams

    cu = micro["cu_seqlens"].to(torch.int32)
    longest = int((cu[1:] - cu[:-1]).max())
    return PackedSeqParams(qkv_format="thd", cu_seqlens_q=cu, cu_seqlens_kv=cu,
                           max_seqlen_q=longest, max_seqlen_kv=longest)


def pad_width(micro: dict[str, Any], multiple: int) -> dict[str, Any]:
    """A padded micro-batch widened with zeros (masked positions) to a multiple of ``multiple``
    positions, as sequence parallelism needs; unchanged when it already is one."""
    width = micro["input_ids"].shape[1]
    extra = -width % multiple
    if not extra:
        return micro
    return {k: torch.nn.functional.pad(v, (0, extra)) if isinstance(v, torch.Tensor) and v.dim() == 2 else v
            for k, v in micro.items()}
