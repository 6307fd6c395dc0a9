"""The in-process rollout engine against independent references: transformers ``generate``,
a plain full forward pass, transformers' own top-k/top-p warpers, and hand-worked numbers."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from medssr_nemo.rollout.inprocess import InProcessEngine
from medssr_nemo.rollout.interfaces import SamplingParams
from medssr_nemo.rollout.sampling import row_uniforms, sample_next_tokens

PROMPT_LENGTHS = (5, 11, 3, 8)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models gain nothing from threads, and on a shared 2-core box they lose a lot."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def tiny_qwen3():
    from medssr_nemo.models import make_tiny_model

    return make_tiny_model("qwen3", seed=0)


@pytest.fixture(scope="module")
def prompts():
    generator = torch.Generator().manual_seed(0)
    return [torch.randint(3, 49000, (n,), generator=generator).tolist() for n in PROMPT_LENGTHS]


def full_forward_logprobs(model, prompt, completion, temperature):
    """log_softmax(logits / T) of each completion token from one unpadded, uncached forward."""
    device = next(model.parameters()).device
    ids = torch.tensor([prompt + completion], device=device)
    with torch.no_grad():
        logits = model(ids).logits[0, len(prompt) - 1: -1].float().cpu()
    logprobs = torch.log_softmax(logits / (temperature or 1.0), dim=-1)
    return logprobs.gather(-1, torch.tensor(completion).unsqueeze(-1)).squeeze(-1)


# ---- greedy and logprobs ------------------------------------------------------------------------

@pytest.mark.parametrize("arch", ["llama", "qwen3"])
def test_greedy_equals_transformers_generate(arch, tiny_llama, tiny_qwen3, prompts):
    model, tokenizer = tiny_llama if arch == "llama" else tiny_qwen3
    engine = InProcessEngine(model, tokenizer)
    completions = engine.generate(prompts, SamplingParams(temperature=0, max_new_tokens=10), seeds=[0] * len(prompts))
    for prompt, completion in zip(prompts, completions):
        reference = model.generate(torch.tensor([prompt]), attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
                                   do_sample=False, max_new_tokens=10)[0, len(prompt):].tolist()
        assert completion.token_ids == reference
        assert completion.finish_reason == "length" and len(completion.token_ids) == 10
        assert completion.prompt_token_ids == prompt
        assert completion.text == tokenizer.decode(reference, skip_special_tokens=True)


@pytest.mark.parametrize("temperature", [0.0, 0.7])
def test_logprobs_equal_a_full_forward_pass(temperature, tiny_llama, prompts):
    model, tokenizer = tiny_llama
    engine = InProcessEngine(model, tokenizer)
    sampling = SamplingParams(temperature=temperature, top_k=50, top_p=0.9, max_new_tokens=12)
    for prompt, completion in zip(prompts, engine.generate(prompts, sampling, seeds=[1, 2, 3, 4])):
        reference = full_forward_logprobs(model, prompt, completion.token_ids, temperature)
        assert torch.allclose(torch.tensor(completion.logprobs), reference, atol=1e-4)


def test_static_cache_gives_the_same_tokens_and_logprobs(tiny_llama, prompts):
    model, tokenizer = tiny_llama
    sampling = SamplingParams(temperature=0.9, top_k=20, max_new_tokens=12)
    dynamic = InProcessEngine(model, tokenizer).generate(prompts, sampling, seeds=[5, 6, 7, 8])
    engine = InProcessEngine(model, tokenizer, cache="static")
    # the kept cache is reset between calls and replaced when the batch shape changes
    for batch in (prompts, prompts[:2], prompts):
        static = engine.generate(batch, sampling, seeds=[5, 6, 7, 8][: len(batch)])
        for a, b in zip(dynamic, static):
            assert a.token_ids == b.token_ids
            assert max(abs(x - y) for x, y in zip(a.logprobs, b.logprobs)) < 1e-4


@pytest.mark.parametrize("cache", ["dynamic", "static"])
def test_cache_slots_are_passed_where_the_model_takes_cache_position(cache, tiny_llama, prompts, monkeypatch):
    """transformers 4.x picks the KV write slot from ``cache.get_seq_length()`` unless given
    ``cache_position``, and its StaticCache counts only row 0's non-zero keys (a left-padded row 0
    reads as short), so a forward that takes ``cache_position`` gets the slots written: the prompt
    width for the prefill, then one slot per decode step."""
    model, tokenizer = tiny_llama
    original, seen = model.forward, []

    def forward_taking_cache_position(*, cache_position=None, **kwargs):
        seen.append(None if cache_position is None else cache_position.tolist())
        return original(**kwargs)

    monkeypatch.setattr(model, "forward", forward_taking_cache_position)
    InProcessEngine(model, tokenizer, cache=cache, drop_finished=False).generate(
        prompts, SamplingParams(temperature=0, max_new_tokens=3), seeds=[0] * len(prompts))
    width = max(PROMPT_LENGTHS)
    assert seen == [list(range(width)), [width], [width + 1]]


# ---- seeds ----------------------------------------------------------------------------------------

def test_same_seed_gives_the_same_tokens_in_any_batch(tiny_llama, prompts):
    model, tokenizer = tiny_llama
    engine = InProcessEngine(model, tokenizer, max_batch_size=16)
    sampling = SamplingParams(temperature=1.0, max_new_tokens=12)
    # 16 rows: every prompt four times with different seeds, in a shuffled order
    batch_prompts = [prompts[i % 4] for i in range(16)]
    seeds = [100 + i for i in range(16)]
    batch = engine.generate(batch_prompts, sampling, seeds)
    rerun = engine.generate(batch_prompts, sampling, seeds)
    assert [c.token_ids for c in batch] == [c.token_ids for c in rerun]
    for i in (0, 5, 10, 15):
        alone = engine.generate([batch_prompts[i]], sampling, [seeds[i]])[0]
        assert alone.token_ids == batch[i].token_ids
    small_batches = InProcessEngine(model, tokenizer, max_batch_size=3).generate(batch_prompts, sampling, seeds)
    assert [c.token_ids for c in small_batches] == [c.token_ids for c in batch]
    # same prompt, different seeds: different samples (random weights give a near-flat distribution)
    same_prompt = [batch[i].token_ids for i in (0, 4, 8, 12)]
    assert len({tuple(t) for t in same_prompt}) == 4


def test_rows_sharing_a_prompt_share_its_prefill_and_sample_as_if_alone(tiny_llama, prompts):
    model, tokenizer = tiny_llama
    sampling = SamplingParams(temperature=1.0, max_new_tokens=10)
    batch_prompts = [prompts[i // 3] for i in range(12)]          # 4 prompts x 3 samples, as a GRPO group
    seeds = [7 + i for i in range(12)]
    prefilled = []
    shared = InProcessEngine(model, tokenizer, max_batch_size=12)
    original = shared._forward

    def spy(input_ids, *args, **kwargs):
        if not kwargs.get("decode"):
            prefilled.append(input_ids.shape[0])
        return original(input_ids, *args, **kwargs)
    shared._forward = spy
    together = shared.generate(batch_prompts, sampling, seeds)
    assert prefilled == [4]                                        # one prefill row per distinct prompt
    separate = InProcessEngine(model, tokenizer, max_batch_size=12, share_prefill=False).generate(
        batch_prompts, sampling, seeds)
    assert [c.token_ids for c in together] == [c.token_ids for c in separate]
    for a, b in zip(together, separate):
        torch.testing.assert_close(torch.tensor(a.logprobs), torch.tensor(b.logprobs), rtol=1e-5, atol=1e-5)
    assert len({tuple(together[i].token_ids) for i in range(3)}) == 3   # copies of a cache still sample apart


def test_top_k_one_equals_greedy(tiny_llama, prompts):
    model, tokenizer = tiny_llama
    engine = InProcessEngine(model, tokenizer)
    greedy = engine.generate(prompts, SamplingParams(temperature=0, max_new_tokens=8), [0] * 4)
    top1 = engine.generate(prompts, SamplingParams(temperature=1.3, top_k=1, max_new_tokens=8), [9, 8, 7, 6])
    assert [c.token_ids for c in top1] == [c.token_ids for c in greedy]


# ---- constraints and stopping ------------------------------------------------------------------

def test_allowed_token_ids_restrict_every_token(tiny_llama, prompts):
    model, tokenizer = tiny_llama
    engine = InProcessEngine(model, tokenizer)
    letters = tuple(tokenizer.convert_tokens_to_ids(list("ABCD")))
    for temperature in (0.0, 1.0):
        sampling = SamplingParams(temperature=temperature, max_new_tokens=16, allowed_token_ids=letters)
        completions = engine.generate(prompts, sampling, seeds=[1, 2, 3, 4])
        tokens = [t for c in completions for t in c.token_ids]
        assert len(tokens) == 64 and set(tokens) <= set(letters)
    # the logprob stays that of the full vocabulary (the mask is a truncation, like top-k)
    completion = completions[0]
    reference = full_forward_logprobs(model, prompts[0], completion.token_ids, 1.0)
    assert torch.allclose(torch.tensor(completion.logprobs), reference, atol=1e-4)
    assert max(completion.logprobs) < math.log(0.01)  # 4 letters of a near-flat 49k vocabulary


def test_eos_stops_and_is_kept(tiny_llama, prompts):
    model, tokenizer = tiny_llama
    engine = InProcessEngine(model, tokenizer)
    sampling = SamplingParams(temperature=1.0, max_new_tokens=8, allowed_token_ids=(tokenizer.eos_token_id,))
    for completion in engine.generate(prompts, sampling, seeds=[1, 2, 3, 4]):
        assert completion.token_ids == [tokenizer.eos_token_id]
        assert completion.finish_reason == "stop" and completion.text == ""
        assert len(completion.logprobs) == 1


def test_stop_token_ids_stop_one_row_mid_batch(tiny_llama, prompts):
    model, tokenizer = tiny_llama
    engine = InProcessEngine(model, tokenizer)
    greedy = SamplingParams(temperature=0, max_new_tokens=10)
    free = engine.generate(prompts, greedy, [0] * 4)
    # stop row 1 at the first occurrence of its 4th token; the other rows must not notice
    stop_token = free[1].token_ids[3]
    cut = free[1].token_ids.index(stop_token) + 1
    stopped = engine.generate(prompts, SamplingParams(temperature=0, max_new_tokens=10, stop_token_ids=(stop_token,)), [0] * 4)
    assert stopped[1].token_ids == free[1].token_ids[:cut]
    assert stopped[1].finish_reason == "stop"
    assert stopped[1].logprobs == pytest.approx(free[1].logprobs[:cut], abs=1e-5)
    for row in (0, 2, 3):
        expected = free[row].token_ids
        if stop_token in expected:
            expected = expected[: expected.index(stop_token) + 1]
        assert stopped[row].token_ids == expected
    # keeping finished rows in the batch (what dropping them saves) changes no token
    kept = InProcessEngine(model, tokenizer, drop_finished=False).generate(
        prompts, SamplingParams(temperature=0, max_new_tokens=10, stop_token_ids=(stop_token,)), [0] * 4)
    assert [c.token_ids for c in kept] == [c.token_ids for c in stopped]


def test_max_new_tokens_is_respected(tiny_llama, prompts):
    model, tokenizer = tiny_llama
    engine = InProcessEngine(model, tokenizer, eos_token_ids=())
    for max_new_tokens in (1, 7):
        for completion in engine.generate(prompts, SamplingParams(max_new_tokens=max_new_tokens), [1, 2, 3, 4]):
            assert len(completion.token_ids) == len(completion.logprobs) == max_new_tokens
            assert completion.finish_reason == "length"


def test_bad_requests_are_clear_errors(tiny_llama, prompts):
    model, tokenizer = tiny_llama
    engine = InProcessEngine(model, tokenizer)
    with pytest.raises(ValueError, match="4 prompts but 3 seeds"):
        engine.generate(prompts, SamplingParams(), [1, 2, 3])
    with pytest.raises(ValueError, match="prompt 1 is empty"):
        engine.generate([[5], []], SamplingParams(), [1, 2])
    with pytest.raises(ValueError, match="max_position_embeddings=2048"):
        engine.generate(prompts, SamplingParams(max_new_tokens=2045), [1, 2, 3, 4])
    with pytest.raises(ValueError, match="allowed_token_ids"):
        engine.generate(prompts, SamplingParams(allowed_token_ids=(10**6,)), [1, 2, 3, 4])
    with pytest.raises(ValueError, match="compile=True needs cache='static'"):
        InProcessEngine(model, tokenizer, compile=True)


# ---- weights ----------------------------------------------------------------------------------------

def test_update_weights_switches_to_the_loaded_model(tiny_llama, prompts):
    from medssr_nemo.models import make_tiny_model

    model, tokenizer = tiny_llama
    other, _ = make_tiny_model("llama", seed=1)
    engine = InProcessEngine(copy.deepcopy(model), tokenizer)
    greedy = SamplingParams(temperature=0, max_new_tokens=8)
    before = engine.generate(prompts, greedy, [0] * 4)
    assert engine.weight_version == 0 and {c.weight_version for c in before} == {0}

    assert engine.update_weights(other.state_dict().items()) == 1
    after = engine.generate(prompts, greedy, [0] * 4)
    expected = InProcessEngine(other, tokenizer).generate(prompts, greedy, [0] * 4)
    assert [c.token_ids for c in after] == [c.token_ids for c in expected]
    assert [c.token_ids for c in after] != [c.token_ids for c in before]
    assert {c.weight_version for c in after} == {1} and engine.weight_version == 1


def test_update_weights_rejects_unknown_names_and_wrong_shapes(tiny_llama):
    model, tokenizer = tiny_llama
    engine = InProcessEngine(copy.deepcopy(model), tokenizer)
    with pytest.raises(ValueError, match="unknown tensor name 'model.layers.9.mlp.up_proj.weight'"):
        engine.update_weights([("model.layers.9.mlp.up_proj.weight", torch.zeros(128, 64))])
    with pytest.raises(ValueError, match=r"'model.norm.weight' has shape \(65,\), the model expects \(64,\)"):
        engine.update_weights([("model.norm.weight", torch.zeros(65))])
    assert engine.weight_version == 0


def test_shared_module_update_only_bumps_the_version(tiny_llama, prompts):
    model, tokenizer = tiny_llama
    engine = InProcessEngine(model, tokenizer)  # the very module a policy backend would train
    assert engine.model is model
    version = engine.update_weights(model.state_dict().items())
    assert version == 1 and engine.last_update == {"tensors": len(model.state_dict()), "copied": 0}
    completion = engine.generate(prompts[:1], SamplingParams(max_new_tokens=2), [0])[0]
    assert completion.weight_version == 1


def test_shared_training_module_in_train_mode_with_checkpointing(tiny_llama, prompts):
    model, tokenizer = tiny_llama
    policy_module = copy.deepcopy(model)
    if hasattr(policy_module, "activation_checkpointing_enable"):  # transformers >= 5.2x
        policy_module.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    else:
        policy_module.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    policy_module.train()
    greedy = SamplingParams(temperature=0, max_new_tokens=6)
    shared = InProcessEngine(policy_module, tokenizer).generate(prompts, greedy, [0] * 4)
    assert policy_module.training  # handed back as it came
    plain = InProcessEngine(model, tokenizer).generate(prompts, greedy, [0] * 4)
    assert [c.token_ids for c in shared] == [c.token_ids for c in plain]
    # and the module still trains afterwards (no inference tensors left behind)
    loss = policy_module(torch.tensor([prompts[0]]), labels=torch.tensor([prompts[0]])).loss
    loss.backward()
    assert policy_module.model.embed_tokens.weight.grad is not None


def test_other_dtype_works_on_a_copy_and_leaves_the_callers_module_alone(tiny_llama, prompts):
    model, tokenizer = tiny_llama
    engine = InProcessEngine(model, tokenizer, dtype="bfloat16")
    assert engine.model is not model
    assert next(model.parameters()).dtype == torch.float32
    assert next(engine.model.parameters()).dtype == torch.bfloat16
    engine.update_weights(model.state_dict().items())  # float32 tensors are cast on the way in
    assert engine.last_update["copied"] == len(model.state_dict())
    completion = engine.generate(prompts[:1], SamplingParams(max_new_tokens=4), [0])[0]
    assert len(completion.token_ids) == 4


# ---- the sampling function on hand-built distributions ----------------------------------------------

def draw(logits, n, **sampling):
    tokens, logprobs = sample_next_tokens(logits.expand(n, -1), uniforms=row_uniforms(list(range(n)), 1)[:, 0], **sampling)
    return tokens, logprobs


def test_top_p_keeps_the_nucleus_with_renormalised_frequencies():
    probs = torch.tensor([0.5, 0.25, 0.15, 0.07, 0.03])
    # mass before each token: 0, .5, .75, .9, .97 -> top_p=0.8 keeps tokens 0, 1, 2
    tokens, logprobs = draw(probs.log(), 20000, temperature=1.0, top_p=0.8)
    frequencies = torch.bincount(tokens, minlength=5).float() / 20000
    assert frequencies[3] == 0 and frequencies[4] == 0
    expected = torch.tensor([0.5, 0.25, 0.15]) / 0.9
    assert torch.allclose(frequencies[:3], expected, atol=0.015)  # > 4 standard errors
    assert torch.allclose(logprobs, probs.log()[tokens], atol=1e-6)  # untruncated logprob


def test_sampling_matches_transformers_warpers_on_random_logits():
    from transformers.generation.logits_process import (
        TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper)

    logits = torch.randn(1, 300, generator=torch.Generator().manual_seed(3)) * 2
    temperature, top_k, top_p = 0.7, 12, 0.8
    warped = logits
    for warper in (TemperatureLogitsWarper(temperature), TopKLogitsWarper(top_k), TopPLogitsWarper(top_p)):
        warped = warper(None, warped)
    expected = torch.softmax(warped, dim=-1)[0]
    tokens, _ = draw(logits, 20000, temperature=temperature, top_k=top_k, top_p=top_p)
    frequencies = torch.bincount(tokens, minlength=300).float() / 20000
    assert set(tokens.unique().tolist()) == set(expected.nonzero().squeeze(1).tolist())
    assert torch.allclose(frequencies, expected, atol=0.015)


def test_greedy_and_temperature_logprob_convention():
    logits = torch.tensor([[1.0, 3.0, 2.0, 3.0]])
    tokens, logprobs = sample_next_tokens(logits, temperature=0.0)
    assert tokens.tolist() == [1]  # ties go to the lowest id, as torch.argmax / generate
    assert logprobs.item() == pytest.approx(torch.log_softmax(logits, -1)[0, 1].item())
    tokens, logprobs = sample_next_tokens(logits, temperature=2.0, uniforms=torch.tensor([0.0]))
    assert logprobs.item() == pytest.approx(torch.log_softmax(logits / 2, -1)[0, tokens.item()].item())


def test_row_uniforms_depend_only_on_the_seed():
    assert torch.equal(row_uniforms([7, 8, 9], 5)[1], row_uniforms([8], 5)[0])
    assert not torch.equal(row_uniforms([7], 5), row_uniforms([8], 5))


# ---- plugin and the real policy -------------------------------------------------------------------

def test_registered_factory_builds_the_engine_from_config(tiny_llama):
    from medssr_nemo import registry
    from medssr_nemo.config.schema.rollout import RolloutConfig

    model, tokenizer = tiny_llama
    factory = registry.get("rollout_engine", "inprocess")
    engine = factory(RolloutConfig(batch_size=7, options={"cache": "static"}), model=model, tokenizer=tokenizer)
    assert isinstance(engine, InProcessEngine)
    assert engine.max_batch_size == 7 and engine.cache_kind == "static" and engine.model is model
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['cuda_graphs'\]"):
        factory(RolloutConfig(options={"cuda_graphs": True}), model=model, tokenizer=tokenizer)


def test_embedded_smollm2_chat_prompt_greedy_equals_generate():
    from medssr_nemo.models import load_causal_lm
    from medssr_nemo.prompts import encode_prompt
    from medssr_nemo.records import QuestionRecord

    model, tokenizer = load_causal_lm("embedded:smollm2-135m-instruct")
    record = QuestionRecord(id="q1", question="Which vitamin deficiency causes scurvy?",
                            options=["Vitamin A", "Vitamin B12", "Vitamin C", "Vitamin D"])
    prompt = encode_prompt(record, tokenizer, "chat")
    completion = InProcessEngine(model, tokenizer).generate([prompt], SamplingParams(temperature=0, max_new_tokens=6), [0])[0]
    reference = model.generate(torch.tensor([prompt]), attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
                               do_sample=False, max_new_tokens=6)[0, len(prompt):].tolist()
    assert completion.token_ids == reference
    assert completion.text == tokenizer.decode(reference, skip_special_tokens=True)


@pytest.mark.slow
def test_compiled_static_decode_gives_the_same_tokens(tiny_llama, prompts):
    """torch.compile of the decode step (CUDA graphs on GPU; inductor on CPU, ~2 min to compile)."""
    model, tokenizer = tiny_llama
    sampling = SamplingParams(temperature=0.8, top_k=20, max_new_tokens=10)
    eager = InProcessEngine(model, tokenizer).generate(prompts, sampling, [1, 2, 3, 4])
    compiled = InProcessEngine(model, tokenizer, cache="static", compile=True)
    for _ in range(2):  # the second call reuses the compiled graph
        assert [c.token_ids for c in compiled.generate(prompts, sampling, [1, 2, 3, 4])] == [c.token_ids for c in eager]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("options", [dict(), dict(cache="static"), dict(cache="static", compile=True)])
def test_cuda_engine_greedy_equals_generate_on_cuda(tiny_llama, prompts, options):
    model, tokenizer = tiny_llama
    cuda_model = copy.deepcopy(model).to("cuda")
    engine = InProcessEngine(cuda_model, tokenizer, **options)
    assert engine.model is cuda_model and engine.device.type == "cuda"
    references = [cuda_model.generate(torch.tensor([p], device="cuda"), do_sample=False, max_new_tokens=8,
                                      attention_mask=torch.ones(1, len(p), dtype=torch.long, device="cuda"))[0, len(p):].tolist()
                  for p in prompts]
    for _ in range(2):  # the second call replays what the first compiled / recorded
        greedy = engine.generate(prompts, SamplingParams(temperature=0, max_new_tokens=8), [0] * 4)
        assert [c.token_ids for c in greedy] == references
    sampling = SamplingParams(temperature=1.0, top_p=0.9, max_new_tokens=8)
    first, second = (engine.generate(prompts, sampling, [1, 2, 3, 4]) for _ in range(2))
    assert [c.token_ids for c in first] == [c.token_ids for c in second]
    for prompt, completion in zip(prompts, first):
        reference = full_forward_logprobs(cuda_model, prompt, completion.token_ids, 1.0)
        assert torch.allclose(torch.tensor(completion.logprobs), reference, atol=1e-3)
