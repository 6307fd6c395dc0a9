"""The hf policy backend on a tiny random Llama with SmolLM2's real tokenizer."""

from __future__ import annotations

import copy
import json
import math

import pytest
import torch

from medssr_nemo.config import load_config
from medssr_nemo.config.loader import ConfigError
from medssr_nemo.config.schema import GRPOConfig, PolicyConfig
from medssr_nemo.grpo.losses import make_grpo_loss
from medssr_nemo.policy.hf import HFPolicyBackend
from medssr_nemo.policy.schedules import LRSchedule
from policy_hf_batch import make_batch


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Two intra-op threads on a shared 2-core machine thrash (measured: 10x slower steps)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _backend(tiny_llama, reference: bool = True, total_steps: int | None = None, **policy) -> HFPolicyBackend:
    model, tokenizer = tiny_llama
    cfg = PolicyConfig(**{"lr": 1e-3, "device": "cpu", "micro_batch_size": 4, **policy})
    return HFPolicyBackend(cfg, model=copy.deepcopy(model), tokenizer=tokenizer, reference=reference,
                           total_steps=total_steps)


def _loss(**grpo):
    cfg = GRPOConfig(**{"kl_coef": 0.05, "kl_estimator": "k3", "entropy_coef": 0.01, **grpo})
    return make_grpo_loss(cfg)


def _capture_grads(backend: HFPolicyBackend) -> list:
    """Record the (clipped) gradients the optimiser sees at its next step."""
    seen: list = []
    step = backend.optimizer.step

    def recording_step(*args, **kwargs):
        seen.append([p.grad.detach().clone() for p in backend.params])
        return step(*args, **kwargs)

    backend.optimizer.step = recording_step
    return seen


def test_logprobs_equal_manual_forward_and_log_softmax(tiny_llama):
    backend = _backend(tiny_llama, micro_batch_size=3, options={"logprob_chunk_positions": 5})
    batch = make_batch(backend)
    temperature = 0.7
    got = backend.logprobs(batch, temperature)
    with torch.no_grad():
        logits = tiny_llama[0](input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    manual = torch.log_softmax(logits.float() / temperature, dim=-1)[:, :-1].gather(
        -1, batch["input_ids"][:, 1:, None]).squeeze(-1)
    manual = torch.cat([torch.zeros(4, 1), manual], dim=1)
    attended = batch["attention_mask"].bool()
    response = batch["response_mask"].bool()
    # with a response mask, the response tokens are exact (only they get logits computed) ...
    torch.testing.assert_close(got[response], manual[response], rtol=1e-5, atol=1e-5)
    # ... and without one, every attended position is
    full = backend.logprobs({k: batch[k] for k in ("input_ids", "attention_mask")}, temperature)
    torch.testing.assert_close(full[attended], manual[attended], rtol=1e-5, atol=1e-5)
    assert full[:, 0].eq(0).all() and full[~attended].eq(0).all() and got[~attended].eq(0).all()


@pytest.mark.parametrize("aggregation", ["token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm"])
def test_train_step_does_not_depend_on_micro_batch_size(tiny_llama, aggregation):
    results = []
    for micro in (1, 2, 4):
        # adam_eps 1e-3 keeps Adam's first step lr * g / (|g| + eps) smooth in g, so float32
        # rounding in the gradient cannot flip a near-zero update (it can with eps 1e-8)
        backend = _backend(tiny_llama, micro_batch_size=micro, grad_clip=0.5, adam_eps=1e-3)
        batch = make_batch(backend)
        grads = _capture_grads(backend)
        metrics = backend.train_step(batch, _loss(loss_aggregation=aggregation))
        results.append((metrics, grads[0], [p.detach().clone() for p in backend.params]))
    (m1, g1, w1), *others = results
    assert m1["clip_frac_high"] + m1["clip_frac_low"] > 0  # the noisy old logprobs do clip some tokens
    for metrics, grads, weights in others:
        for key in ("loss", "grad_norm", "kl", "entropy", "pg_loss", "clip_frac_high", "ratio_max"):
            assert metrics[key] == pytest.approx(m1[key], rel=1e-5, abs=1e-7), key
        for a, b in zip(g1, grads):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-7)
        for a, b in zip(w1, weights):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_recomputation_gives_the_same_gradient(tiny_llama):
    """Activation checkpointing of the layers, and softmax slices of 3 positions recomputed in
    the backward pass, change memory use, not the gradient."""
    grads = []
    for checkpointing, chunk in ((False, 1024), (True, 1024), (False, 3)):
        backend = _backend(tiny_llama, micro_batch_size=2, gradient_checkpointing=checkpointing,
                           options={"logprob_chunk_positions": chunk})
        assert backend.model.model.layers[0].gradient_checkpointing is checkpointing
        assert [name for name, _ in backend.export_hf_weights()] == list(tiny_llama[0].state_dict())
        seen = _capture_grads(backend)
        backend.train_step(make_batch(backend), _loss())
        grads.append(seen[0])
    for other in grads[1:]:
        for a, b in zip(grads[0], other):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


def test_first_epoch_is_on_policy_and_a_second_epoch_is_not(tiny_llama):
    backend = _backend(tiny_llama, micro_batch_size=2)
    batch = make_batch(backend)
    batch["old_logprobs"] = backend.logprobs(batch)
    first = backend.train_step(batch, _loss())
    second = backend.train_step(batch, _loss())
    assert first["ratio_min"] == pytest.approx(1.0, abs=1e-6) and first["ratio_max"] == pytest.approx(1.0, abs=1e-6)
    assert second["ratio_max"] > 1.0 + 1e-4 and second["ratio_min"] < 1.0 - 1e-4
    assert backend.step == 2


def test_grad_clip_reports_the_norm_before_clipping(tiny_llama):
    backend = _backend(tiny_llama, grad_clip=1e-3)
    seen = _capture_grads(backend)
    metrics = backend.train_step(make_batch(backend), _loss())
    clipped = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in seen[0]]))
    assert metrics["grad_norm"] > 1e-2
    assert clipped.item() == pytest.approx(1e-3, rel=1e-4)


def test_lr_schedules_by_hand():
    constant = LRSchedule(1e-3, "constant", warmup_steps=4)
    assert [constant(s) for s in (0, 1, 3, 10)] == pytest.approx([2.5e-4, 5e-4, 1e-3, 1e-3])
    cosine = LRSchedule(1.0, "cosine", warmup_steps=2, total_steps=12, min_lr_ratio=0.1)
    # warm-up 1/2, 2/2; then p = (s - 2) / 10 and lr = 0.1 + 0.9 * 0.5 * (1 + cos(pi p))
    assert cosine(0) == pytest.approx(0.5) and cosine(1) == pytest.approx(1.0) and cosine(2) == pytest.approx(1.0)
    assert cosine(4) == pytest.approx(0.1 + 0.45 * (1 + math.cos(0.2 * math.pi)))  # 0.9140576
    assert cosine(7) == pytest.approx(0.55)
    assert cosine(12) == pytest.approx(0.1) and cosine(30) == pytest.approx(0.1)
    with pytest.raises(ValueError, match="train.steps"):
        LRSchedule(1.0, "cosine")


def test_backend_applies_the_schedule_each_step(tiny_llama):
    backend = _backend(tiny_llama, reference=False, total_steps=3, schedule="cosine", warmup_steps=1)
    batch = make_batch(backend)
    lrs = [backend.train_step(batch, _loss(kl_coef=0.0))["lr"] for _ in range(3)]
    # step 0: warm-up 1/1 -> 1e-3; steps 1, 2: p = 0, 1/2 -> 1e-3, 0.5e-3
    assert lrs == pytest.approx([1e-3, 1e-3, 0.5e-3])
    assert backend.optimizer.param_groups[0]["lr"] == pytest.approx(0.5e-3)


def test_save_load_then_step_is_bit_identical_to_uninterrupted(tiny_llama, tmp_path):
    loss = _loss()
    straight = _backend(tiny_llama, micro_batch_size=2)
    batches = [make_batch(straight, seed) for seed in (1, 2, 3)]
    straight.train_step(batches[0], loss)
    straight.save(tmp_path / "ckpt")
    straight.train_step(batches[1], loss)
    straight.save(tmp_path / "ckpt")  # overwriting a checkpoint is atomic too
    straight.train_step(batches[2], loss)

    resumed = _backend(tiny_llama, micro_batch_size=2)
    resumed.load(tmp_path / "ckpt")
    assert resumed.step == 2
    resumed.train_step(batches[2], loss)
    for (name, a), (_, b) in zip(straight.model.state_dict().items(), resumed.model.state_dict().items()):
        assert torch.equal(a, b), name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]  # no temp dirs left behind
    assert json.loads((tmp_path / "ckpt" / "backend_state.json").read_text())["step"] == 2
    with pytest.raises(FileNotFoundError, match="optimizer.pt"):
        (tmp_path / "ckpt" / "optimizer.pt").unlink()
        resumed.load(tmp_path / "ckpt")


def test_reference_policy_stays_frozen(tiny_llama):
    backend = _backend(tiny_llama)
    batch = make_batch(backend)
    before_ref = backend.reference_logprobs(batch)
    before = backend.logprobs(batch)
    for _ in range(2):
        backend.train_step(batch, _loss())
    assert all(not p.requires_grad for p in backend.reference_model.parameters())
    assert torch.equal(backend.reference_logprobs(batch), before_ref)
    assert not torch.allclose(backend.logprobs(batch), before)
    without = _backend(tiny_llama, reference=False)
    assert without.reference_model is None
    with pytest.raises(RuntimeError, match="without a reference"):
        without.reference_logprobs(batch)


def test_export_hf_weights_are_the_model_state_dict(tiny_llama):
    backend = _backend(tiny_llama)
    backend.train_step(make_batch(backend), _loss())
    exported = dict(backend.export_hf_weights())
    state = backend.model.state_dict()
    assert list(exported) == list(state)
    assert "model.embed_tokens.weight" in exported and "model.layers.0.self_attn.q_proj.weight" in exported
    assert all(torch.equal(exported[k], state[k]) for k in state)


def test_save_hf_writes_a_loadable_hugging_face_directory(tiny_llama, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    backend = _backend(tiny_llama, reference=False)
    batch = make_batch(backend)
    backend.train_step(batch, _loss(kl_coef=0.0))
    backend.save_hf(tmp_path / "hf")
    names = {p.name for p in (tmp_path / "hf").iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= names
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path / "hf")
    assert len(AutoTokenizer.from_pretrained(tmp_path / "hf")) == len(backend.tokenizer)
    with torch.no_grad():
        a = backend.model(input_ids=batch["input_ids"]).logits
        b = reloaded(input_ids=batch["input_ids"]).logits
    torch.testing.assert_close(a, b)


def test_unknown_backend_option_is_an_error(tiny_llama):
    with pytest.raises(ValueError, match=r"policy.options.*'chunk'.*logprob_chunk_positions"):
        _backend(tiny_llama, options={"chunk": 3})
    with pytest.raises(ValueError, match="policy.options.logprob_micro_batch_size"):
        _backend(tiny_llama, options={"logprob_micro_batch_size": -1})


@pytest.mark.parametrize("override, key", [
    ("policy.schedule=linear", "policy.schedule"),
    ("policy.micro_batch_size=0", "policy.micro_batch_size"),
    ("policy.device=tpu", "policy.device"),
    ("policy.betas=[0.9]", "policy.betas"),
    ("policy.min_lr_ratio=2", "policy.min_lr_ratio"),
])
def test_bad_policy_config_names_the_key(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config("base", [override])


def test_registered_factory_builds_from_config(tiny_llama):
    from medssr_nemo import registry

    cfg = load_config("base", ["policy.device=cpu", "grpo.kl_coef=0", "policy.schedule=cosine", "train.steps=7",
                                 "grpo.ppo_epochs=2"])
    build = registry.get("policy_backend", "hf")
    backend = build(cfg, model=copy.deepcopy(tiny_llama[0]), tokenizer=tiny_llama[1])
    assert isinstance(backend, HFPolicyBackend)
    assert backend.reference_model is None and backend.schedule.total_steps == 14  # 7 batches x 2 epochs


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_bf16_autocast_on_cuda_is_close_to_float32(tiny_llama):
    exact = _backend(tiny_llama, device="cuda", bf16=False)
    mixed = _backend(tiny_llama, device="cuda", bf16=True)
    batch = make_batch(exact)
    assert exact.logprobs(batch).device == batch["input_ids"].device  # results come back to the caller
    cpu = _backend(tiny_llama, device="cpu").logprobs(batch)
    torch.testing.assert_close(exact.logprobs(batch), cpu, rtol=1e-4, atol=1e-4)
    difference = (mixed.logprobs(batch) - cpu).abs().max().item()
    assert 0 < difference < 0.1  # bf16 rounding shows, but only slightly
    metrics = mixed.train_step(batch, _loss())
    assert math.isfinite(metrics["grad_norm"]) and metrics["update_skipped"] == 0.0
    assert next(mixed.model.parameters()).dtype == torch.float32  # autocast, not bf16 weights
