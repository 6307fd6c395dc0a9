"""A fixed 4-sequence GRPO batch for the hf backend tests (shared with the torchrun worker)."""

from __future__ import annotations

import torch

LENGTHS = (7, 12, 5, 10)        # prompt + response tokens per row: different lengths, right padded
PROMPT_LENGTHS = (3, 4, 2, 5)


def make_batch(backend, seed: int = 0, temperature: float = 1.0) -> dict[str, torch.Tensor]:
    """Token rows, masks, sequence advantages, and old/reference logprobs that differ from the
    policy's own (noise), so clipping and the KL term both take part in the loss."""
    gen = torch.Generator().manual_seed(seed)
    rows, width = len(LENGTHS), max(LENGTHS)
    pad = backend.tokenizer.pad_token_id
    input_ids = torch.full((rows, width), pad, dtype=torch.long)
    attention_mask = torch.zeros((rows, width), dtype=torch.long)
    response_mask = torch.zeros((rows, width), dtype=torch.float32)
    for row, (length, prompt) in enumerate(zip(LENGTHS, PROMPT_LENGTHS)):
        input_ids[row, :length] = torch.randint(10, 5000, (length,), generator=gen)
        attention_mask[row, :length] = 1
        response_mask[row, prompt:length] = 1
    batch = {"input_ids": input_ids, "attention_mask": attention_mask, "response_mask": response_mask,
             "advantages": torch.tensor([1.0, -0.5, 0.7, -1.2]), "group_ids": torch.tensor([0, 0, 1, 1])}
    policy = backend.logprobs(batch, temperature)
    batch["old_logprobs"] = policy + 0.3 * torch.randn(policy.shape, generator=gen)
    batch["ref_logprobs"] = policy + 0.5 * torch.randn(policy.shape, generator=gen)
    return batch
