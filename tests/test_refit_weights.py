"""A refit delivers the source weights: the engine's tensors, read back after ``update_weights``,
equal the trainer's tensors cast to the engine's dtype, every one of them, for engines that keep
their own copy in another dtype (a counter or an output length would not notice a missed or
half-applied refit)."""

from __future__ import annotations

import copy
import tempfile

import pytest
import torch

from medssr_nemo import registry
from medssr_nemo.config import load_config
from medssr_nemo.grpo.trainer import GRPOTrainer
from medssr_nemo.models import make_tiny_model
from medssr_nemo.records import QuestionRecord
from medssr_nemo.rollout.inprocess import InProcessEngine

DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16}


def trained(seed: int = 1) -> torch.nn.Module:
    """Weights that differ from the engine's initial ones in every tensor (norms included)."""
    model = make_tiny_model("llama", seed=seed)[0]
    generator = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn(param.shape, generator=generator) * 0.01)
    return model


def assert_engine_holds(engine_model: torch.nn.Module, source: dict[str, torch.Tensor], dtype: torch.dtype) -> None:
    state = engine_model.state_dict()
    assert set(source) <= set(state)
    for name, tensor in source.items():
        assert state[name].dtype == dtype, name
        assert torch.equal(state[name], tensor.to(dtype)), f"{name}: the engine does not hold the refitted tensor"


@pytest.mark.parametrize("dtype", sorted(DTYPES))
def test_inprocess_refit_of_a_copy_in_another_dtype_holds_every_source_tensor(tiny_llama, dtype):
    """Catches: a refit that skips tensors, copies into a stale module, or writes them uncast.
    Planted by hand: ``update_weights`` copying only tensors already in the engine's dtype fails."""
    model, tokenizer = tiny_llama
    engine = InProcessEngine(model, tokenizer, dtype=dtype)
    source = {k: v.detach().clone() for k, v in trained().state_dict().items()}
    before = {k: v.clone() for k, v in engine.model.state_dict().items()}
    assert engine.update_weights(source.items()) == 1
    assert_engine_holds(engine.model, source, DTYPES[dtype])
    changed = [k for k in source if not torch.equal(before[k], engine.model.state_dict()[k])]
    assert len(changed) == len(source)                     # every tensor moved, none was left behind
    assert next(model.parameters()).dtype == torch.float32  # the caller's module is untouched


def test_inprocess_refit_from_bfloat16_into_float32_is_exact(tiny_llama):
    """The other direction: a bf16 trainer refitting a float32 engine (every value representable).
    Planted by hand: ``update_weights`` copying only tensors whose dtype matches the engine's
    (``inprocess_refit_skips_cast`` in scripts/mutation_check.py) fails here: the engine keeps
    its initial float32 weights instead of the trained bf16 ones."""
    model, tokenizer = tiny_llama
    # a float32 engine shares a float32 module: refit a copy, never the session's tiny model
    engine = InProcessEngine(copy.deepcopy(model), tokenizer, dtype="float32")
    source = {k: v.detach().to(torch.bfloat16) for k, v in trained().state_dict().items()}
    engine.update_weights(source.items())
    assert_engine_holds(engine.model, source, torch.float32)


def by_length(prompts, completions, **columns):
    return [len(text) % 3 for text in completions]


RECORDS = [QuestionRecord(id=f"q{i}", question=f"Question {i}?", options=["a", "b", "c", "d"], gold="A")
           for i in range(4)]


def test_trainer_refits_the_engine_copy_with_the_updated_weights(tmp_path):
    """Catches: the trainer refitting before the update, from the reference model, or not at all,
    when the engine keeps a bf16 copy. After every step the engine holds the policy's weights in
    bf16, and they are not the initial ones. Planted by hand: a refit that sends no tensors (the
    version still goes up) fails at step 1."""
    cfg = load_config("base", [
        "model.prompt_style=base", "grpo.group_size=4", "grpo.prompts_per_step=2", "grpo.kl_coef=0.0",
        "rollout.max_new_tokens=4", "policy.lr=1e-2", "train.tensorboard=false", "train.save_hf=false",
        "train.steps=2", "+rollout.options.dtype=bfloat16", f"output_dir={tmp_path}",
        f"reward.sources.gold=[{{name: '{__name__}:by_length'}}]"])
    model, tokenizer = make_tiny_model("llama", seed=0)
    initial = {k: v.detach().clone() for k, v in model.state_dict().items()}
    policy = registry.get("policy_backend", "hf")(cfg, model=model, tokenizer=tokenizer)
    seen: list[int] = []

    def check(step, metrics):
        current = {k: v.detach() for k, v in trainer.policy.export_hf_weights()}
        assert_engine_holds(trainer.engine.model, current, torch.bfloat16)
        assert not torch.equal(current["model.norm.weight"], initial["model.norm.weight"])
        assert metrics["weight_version"] == step == trainer.engine.weight_version
        seen.append(step)

    trainer = GRPOTrainer(cfg, records=RECORDS, policy=policy, callbacks=[check], show_progress=False).setup()
    assert trainer.engine.model is not model          # a bf16 copy, not the shared module
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        trainer.train()
    finally:
        torch.set_num_threads(threads)
    assert seen == [1, 2]


def test_tensorrt_llm_refit_in_bfloat16_holds_every_tensor(fake_trtllm):
    """The TensorRT-LLM engine (against the fake in tests/fakes: the refit protocol, not the
    kernels) in bf16: every tensor the fake engine ends up with is the source rounded to bf16.
    Catches: a bucket dropped or a tensor left uncast. Planted by hand: the refit's dtype cast
    removed fails on the first tensor that is not exactly representable in bf16."""
    from test_trtllm_engine import hf_named, make_engine
    from medssr_nemo.models import save_tiny_model

    with tempfile.TemporaryDirectory() as tmp:
        tiny_dir = str(save_tiny_model(f"{tmp}/llama", "llama", seed=0))
        engine = make_engine(fake_trtllm, tiny_dir, dtype="bfloat16", bucket_mb=1)
        source = dict(hf_named(trained()))
        engine.update_weights(list(source.items()))
        for worker in engine.llm.workers:
            state = worker.engine.model_engine.model.hf.state_dict()   # fused shards aside, the full HF copy
            for name, tensor in source.items():
                assert torch.equal(state[name], tensor.to(torch.bfloat16).to(state[name].dtype)), name
            inexact = [n for n, t in source.items() if not torch.equal(t.to(torch.bfloat16).float(), t)]
            assert inexact   # the check would see a missing cast
