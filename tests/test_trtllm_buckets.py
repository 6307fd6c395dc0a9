"""Bucket arithmetic, checksums and the packed wire format, against hand-worked numbers."""

from __future__ import annotations

import random

import pytest
import torch

from medssr_nemo.rollout.trtllm.buckets import align_up, iter_buckets, plan_buckets
from medssr_nemo.rollout.trtllm.checksum import checksums_match, tensor_checksum
from medssr_nemo.rollout.trtllm.packing import pack, unpack


def test_bucket_plan_worked_by_hand():
    # bound 256 B, 64 B alignment, sizes 100, 100, 30, 500, 10:
    #   t0 at 0 (ends 100); t1 at align(100)=128 (ends 228 <= 256)      -> bucket [t0, t1], 228 B
    #   t2 would start at align(228)=256 and end 286 > 256               -> new bucket [t2], 30 B
    #   t3 (500 B) does not fit with t2, and alone exceeds the bound     -> [t3] alone, oversized
    #   t4 starts a fresh bucket                                         -> [t4], 10 B
    plan = plan_buckets([100, 100, 30, 500, 10], 256)
    assert [b.indices for b in plan] == [(0, 1), (2,), (3,), (4,)]
    assert [b.offsets for b in plan] == [(0, 128), (0,), (0,), (0,)]
    assert [b.packed_bytes for b in plan] == [228, 30, 500, 10]
    assert [b.payload_bytes for b in plan] == [200, 30, 500, 10]
    assert [b.oversized for b in plan] == [False, False, True, False]
    assert align_up(0) == 0 and align_up(1) == 64 and align_up(128) == 128


def test_streaming_buckets_follow_the_plan():
    rng = random.Random(0)
    sizes_elems = [rng.choice([1, 7, 16, 100, 300, 1000]) for _ in range(60)]
    tensors = [(f"t{i}", torch.zeros(n, dtype=torch.float32)) for i, n in enumerate(sizes_elems)]
    streamed = [[int(name[1:]) for name, _ in bucket] for bucket in iter_buckets(tensors, 1024)]
    planned = [list(b.indices) for b in plan_buckets([4 * n for n in sizes_elems], 1024)]
    assert streamed == planned


def test_bucket_bound_below_alignment_is_refused():
    with pytest.raises(ValueError, match="at least the alignment"):
        plan_buckets([1], 16)


def test_checksum_worked_by_hand_and_order_sensitive():
    assert tensor_checksum(torch.tensor([1.0, 2.0, 3.0])) == 1 * 1 + 2 * 2 + 3 * 3
    assert tensor_checksum(torch.tensor([3.0, 2.0, 1.0])) == 3 * 1 + 2 * 2 + 1 * 3  # 10, not 14
    # rounding to the engine's dtype happens before the sum: 1 + 2^-10 is not a bfloat16
    assert tensor_checksum(torch.tensor([1.0 + 2**-10]), torch.bfloat16) == 1.0
    assert checksums_match(14.0, 14.0 + 1e-12) and not checksums_match(14.0, 14.001)


def test_pack_round_trip_is_bit_exact_for_mixed_dtypes():
    bucket = [("a", torch.randn(3, 5).bfloat16()), ("b", torch.arange(7)), ("c", torch.randn(2, 2)),
              ("d", torch.tensor([True, False]))]
    metas, buffer = pack(bucket)
    assert [m.offset for m in metas] == [0, 64, 128, 192]      # 30 B, 56 B, 16 B: each aligned to 64
    assert buffer.numel() == 194 and buffer.dtype == torch.uint8
    restored = unpack(metas, buffer)
    assert all(torch.equal(restored[name], tensor) and restored[name].dtype == tensor.dtype for name, tensor in bucket)
