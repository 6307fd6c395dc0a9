"""Sequence packing (policy/packing.py) and the megatron backend's GPU speed flags
(policy/megatron/speed.py). The end-to-end packed-vs-padded parity at TP1/TP2/PP2 is in
tests/test_megatron_backend.py."""

from __future__ import annotations

import pytest
import torch

from medssr_nemo.policy import packing
from medssr_nemo.policy.megatron.speed import FUSION_FLAGS, speed_settings


def _batch(lengths, width=None):
    width = width or max(lengths)
    ids = torch.zeros((len(lengths), width), dtype=torch.long)
    mask = torch.zeros((len(lengths), width), dtype=torch.long)
    for row, length in enumerate(lengths):
        ids[row, :length] = torch.arange(1, length + 1) + 100 * row
        mask[row, :length] = 1
    return {"input_ids": ids, "attention_mask": mask, "response_mask": mask.float(),
            "advantages": torch.arange(len(lengths), dtype=torch.float)}


def test_first_fit_decreasing_fills_bins_longest_first():
    # worked by hand: 12 -> A (8 left); 10 -> B (10 left); 9 -> B (1 left); 7 -> A (1 left); 6 -> C; 5 -> C
    assert packing.first_fit_decreasing([7, 12, 5, 10, 9, 6], 20) == [[1, 0], [3, 4], [5, 2]]
    assert packing.first_fit_decreasing([30, 4], 20) == [[0], [1]]  # too long: a bin of its own
    with pytest.raises(ValueError, match="budget"):
        packing.first_fit_decreasing([1], 0)


def test_row_lengths_read_right_padding():
    batch = _batch([3, 5, 1], width=6)
    assert packing.row_lengths(batch["attention_mask"]) == [3, 5, 1]


def test_packed_micro_batches_lay_rows_end_to_end_with_boundaries():
    batch = _batch([3, 5, 2])
    micros = packing.pack_micro_batches(batch, budget=8, pad_multiple=4)
    assert [m["row_index"].tolist() for m in micros] == [[1, 0], [2]]
    first = micros[0]
    assert first["input_ids"].tolist() == [[101, 102, 103, 104, 105, 1, 2, 3]]
    assert first["position_ids"].tolist() == [[0, 1, 2, 3, 4, 0, 1, 2]]
    assert first["cu_seqlens"].tolist() == [0, 5, 8]
    assert first["rows"]["advantages"].tolist() == [1.0, 0.0]  # per-row values follow their rows
    second = micros[1]  # 2 tokens padded to 4 (sequence parallel over TP 4): a padding segment
    assert second["input_ids"].shape == (1, 4) and second["cu_seqlens"].tolist() == [0, 2, 4]
    assert second["segment_ids"].tolist() == [[0, 0, 1, 1]]


def test_unpack_returns_rows_with_first_position_and_padding_zero():
    batch = _batch([3, 5, 2])
    micro = packing.pack_micro_batches(batch, budget=8)[0]          # rows 1 (5 tokens) then 0 (3)
    leaf = torch.arange(1.0, 9.0, requires_grad=True)
    rows = packing.unpack(leaf[None], micro)                          # one value per packed token
    assert rows.tolist() == [[0, 2, 3, 4, 5], [0, 7, 8, 0, 0]]
    rows.sum().backward()  # differentiable: gradient 1 where a row takes a value, 0 elsewhere
    assert leaf.grad.tolist() == [0, 1, 1, 1, 1, 0, 1, 1]


def test_block_causal_mask_hides_other_sequences_and_the_future():
    seg = torch.tensor([[0, 0, 1, 1, 1]])
    visible = ~packing.block_causal_mask(seg)[0, 0]
    assert visible.tolist() == [[1, 0, 0, 0, 0], [1, 1, 0, 0, 0], [0, 0, 1, 0, 0], [0, 0, 1, 1, 0], [0, 0, 1, 1, 1]]


def test_packed_attention_equals_per_sequence_attention():
    """The block-diagonal mask on one packed row gives each sequence's own causal attention."""
    gen = torch.Generator().manual_seed(0)
    lengths = [4, 3]
    q, k, v = (torch.randn(sum(lengths), 8, generator=gen) for _ in range(3))
    seg = torch.tensor([0] * 4 + [1] * 3)
    scores = (q @ k.T).masked_fill(packing.block_causal_mask(seg)[0, 0], float("-inf"))
    packed = scores.softmax(-1) @ v
    start = 0
    for length in lengths:
        s = slice(start, start + length)
        own = (q[s] @ k[s].T).masked_fill(torch.ones(length, length, dtype=torch.bool).triu(1), float("-inf"))
        torch.testing.assert_close(packed[s], own.softmax(-1) @ v[s])
        start += length


def test_packed_seq_params_carry_the_thd_boundaries():
    micro = packing.pack_micro_batches(_batch([3, 5, 2]), budget=10)[0]
    params = packing.packed_seq_params(micro)
    assert params.qkv_format == "thd"
    assert params.cu_seqlens_q.tolist() == [0, 5, 8, 10] and params.cu_seqlens_q.dtype == torch.int32
    assert params.max_seqlen_q == params.max_seqlen_kv == 5


def test_pad_width_widens_to_a_multiple_with_masked_positions():
    micro = _batch([3, 5])
    padded = packing.pad_width(micro, 4)
    assert padded["input_ids"].shape == (2, 8) and padded["attention_mask"][:, 5:].sum() == 0
    assert packing.pad_width(micro, 5) is micro


def test_gpu_flags_on_with_cuda_and_transformer_engine():
    speed = speed_settings({}, cuda=True, transformer_engine=True, tensor_parallel_size=2)
    overrides = speed.transformer_overrides()
    assert all(overrides[flag] for flag in FUSION_FLAGS) and overrides["sequence_parallel"]
    assert speed.ddp_overrides() == {"overlap_grad_reduce": True, "overlap_param_gather": False,
                                     "grad_reduce_in_fp32": True}
    bf16 = speed_settings({"grad_reduce_dtype": "bf16"}, cuda=True, transformer_engine=True, tensor_parallel_size=1)
    assert not bf16.grad_reduce_in_fp32 and not bf16.sequence_parallel  # TP 1: nothing to split


def test_gpu_flags_off_on_cpu_and_refused_when_forced():
    speed = speed_settings({}, cuda=False, transformer_engine=False, tensor_parallel_size=2)
    assert not any(speed.transformer_overrides().values()) and not speed.overlap_grad_reduce
    with pytest.raises(RuntimeError, match="gpu_fusions=on needs CUDA"):
        speed_settings({"gpu_fusions": "on"}, cuda=False, transformer_engine=False, tensor_parallel_size=1)
    with pytest.raises(RuntimeError, match="sequence_parallel=on"):
        speed_settings({"sequence_parallel": "on"}, cuda=True, transformer_engine=True, tensor_parallel_size=1)


def test_backend_passes_the_gpu_flags_to_megatron_core(monkeypatch):
    """With CUDA simulated the flags reach megatron-core's TransformerConfig (built for real here,
    its TE-only checks aside) and DDP config; on this CPU they stay off."""
    from megatron.core.distributed import DistributedDataParallelConfig

    from medssr_nemo.policy.megatron import model as megatron_model

    arch = megatron_model.ArchSpec("llama", 2, 64, 4, 2, 16, 128, 100, 128, True, False, False, 1e-5, 1e4, 128)
    cpu = speed_settings({}, cuda=torch.cuda.is_available(), transformer_engine=False, tensor_parallel_size=1)
    config = megatron_model.transformer_config(arch, tensor_parallel_size=1, pipeline_parallel_size=1, bf16=False,
                                               **cpu.transformer_overrides())
    assert not any(getattr(config, flag) for flag in FUSION_FLAGS) and not config.sequence_parallel
    gpu = speed_settings({}, cuda=True, transformer_engine=True, tensor_parallel_size=1)
    gpu_flags = {k: v for k, v in gpu.transformer_overrides().items() if k != "apply_rope_fusion"}  # TE-checked
    config = megatron_model.transformer_config(arch, tensor_parallel_size=1, pipeline_parallel_size=1, bf16=False,
                                               **gpu_flags)
    assert config.bias_activation_fusion and config.gradient_accumulation_fusion and config.masked_softmax_fusion
    ddp = DistributedDataParallelConfig(use_distributed_optimizer=True, **gpu.ddp_overrides())
    assert ddp.overlap_grad_reduce and ddp.grad_reduce_in_fp32
