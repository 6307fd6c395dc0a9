"""The TensorRT-LLM rollout engine against the FAKE TensorRT-LLM in tests/fakes (see its README).

What these tests show: the engine's own logic (argument names and types the 1.2 API accepts,
batching, seeds, EOS and logprob alignment, allowed-token restriction, the refit protocol and
its order, bucket arithmetic, stale-weight detection, sleep/wake, error paths). What they cannot
show: anything about the real TensorRT-LLM kernels, CUDA IPC or Ray (see docs/cluster.md).
"""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest
import torch

from medssr_nemo.rollout.interfaces import SamplingParams
from medssr_nemo.rollout.trtllm import api
from medssr_nemo.rollout.trtllm.buckets import plan_buckets
from medssr_nemo.rollout.trtllm.options import TrtllmOptions
from medssr_nemo.rollout.trtllm.refit import StaleWeightsError

MIB = 2**20


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    from medssr_nemo.models import save_tiny_model

    return str(save_tiny_model(tmp_path_factory.mktemp("tiny") / "llama", "llama", seed=0))


@pytest.fixture(scope="module")
def policy_model():
    """The 'trained' policy whose weights a refit must deliver (different seed = different weights)."""
    from medssr_nemo.models import make_tiny_model

    model = make_tiny_model("llama", seed=1)[0]
    generator = torch.Generator().manual_seed(5)
    with torch.no_grad():  # as after training: norm weights are no longer all ones
        for param in model.parameters():
            param.add_(torch.randn(param.shape, generator=generator) * 0.01)
    return model


def hf_state(worker):
    """The fake engine worker's full Hugging Face copy (its registered parameters are fused shards)."""
    return worker.engine.model_engine.model.hf.state_dict()


def make_engine(fake, tiny_dir, **options):
    from transformers import AutoTokenizer

    from medssr_nemo.rollout.trtllm.engine import TensorRTLLMEngine

    opts = TrtllmOptions(dtype=options.pop("dtype", "float32"), **options)
    engine = TensorRTLLMEngine(tiny_dir, AutoTokenizer.from_pretrained(tiny_dir), opts,
                               max_batch_size=options.get("max_batch_size") or 64, trtllm=fake)
    if opts.colocated:  # no CUDA here: a byte-copy handle of reduce_tensor's (function, args) shape
        from tensorrt_llm._fake_ipc import byte_handle

        engine.refitter.transport.make_handle = byte_handle
    return engine


def hf_named(model):
    return list(model.state_dict().items())


PROMPTS = [[1, 520, 33, 812], [1, 77, 3000], [1, 9, 9, 9, 9, 41]]


# ---------------------------------------------------------------- import and capability errors
def test_absent_tensorrt_llm_names_the_container(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt_llm", None)  # makes `import tensorrt_llm` fail
    with pytest.raises(api.TensorRTLLMUnavailable, match=r"nvcr\.io/nvidia/tensorrt-llm/release:1\.2\.0"):
        api.import_trtllm()
    from medssr_nemo.config import load_config
    from medssr_nemo.registry import get

    cfg = load_config("base", ["rollout.engine=tensorrt_llm", "+rollout.options.model_path=/nowhere"])
    with pytest.raises(api.TensorRTLLMUnavailable, match="NGC image"):
        get("rollout_engine", "tensorrt_llm")(cfg.rollout, tokenizer=object())


def test_probe_reads_the_workers_sleep_and_the_unpickler_keyword(fake_trtllm, monkeypatch):
    caps = api.probe(fake_trtllm)
    assert caps.worker_has_sleep and caps.unpickler_keyword == "disallowed_imports"
    assert caps.missing(colocated=True, need_allowed_tokens=True) == []
    from tensorrt_llm import serialization
    from tensorrt_llm.executor.ray_gpu_worker import RayGPUWorker

    monkeypatch.setattr(serialization, "loads", serialization.loads_allowlist)
    assert api.probe(fake_trtllm).unpickler_keyword == "approved_imports"
    monkeypatch.delattr(RayGPUWorker, "sleep")
    assert any("RayGPUWorker has no sleep" in p for p in api.probe(fake_trtllm).missing(colocated=True))


def test_old_version_without_refit_hook_is_refused(fake_trtllm, monkeypatch):
    monkeypatch.setattr(fake_trtllm, "__version__", "1.1.0")
    monkeypatch.delattr(fake_trtllm.LLM, "_collective_rpc")
    with pytest.raises(api.TensorRTLLMUnavailable) as err:
        api.check_capabilities(api.probe(fake_trtllm), colocated=True)
    message = str(err.value)
    assert "1.1.0 is older than 1.2.0" in message and "_collective_rpc" in message and "NGC image" in message


def test_colocated_engine_needs_sleep_mode():
    caps = api.Capabilities("1.2.0", True, True, True, None, frozenset(
        {"max_tokens", "temperature", "top_p", "top_k", "seed", "stop_token_ids",
         "include_stop_str_in_output", "logprobs", "end_id", "logits_processor"}))
    assert caps.missing(colocated=False, need_allowed_tokens=True) == []
    assert any("sleep mode" in p for p in caps.missing(colocated=True))


def test_unknown_option_is_a_clear_error():
    with pytest.raises(ValueError, match=r"unknown keys \['bucket_size'\].*allowed:"):
        TrtllmOptions.from_mapping({"bucket_size": 3})


# ---------------------------------------------------------------- generation
def test_llm_receives_the_1_2_argument_names(fake_trtllm, tiny_dir):
    engine = make_engine(fake_trtllm, tiny_dir)
    args = engine.llm.args  # the fake's typed TorchLlmArgs: a wrong name or type would have raised
    assert args.orchestrator_type == "ray" and args.ray_worker_extension_cls == api.WORKER_EXTENSION
    assert args.skip_tokenizer_init is True and args.sleep_config is not None
    # the KV cache comes back empty, everything else from host memory (the fake validates the
    # keys and mode names the way the real SleepConfig does)
    assert {tag.value: mode for tag, mode in args.sleep_config.restore_modes.items()} == {"kv_cache": "NONE"}
    worker_cls = type(engine.llm.workers[0])   # composed the way RayWorkerWrapper does it
    assert worker_cls.__name__ == "RayGPUWorkerWithMedSSRWorkerExtension"
    assert [c.__name__ for c in worker_cls.__mro__[1:3]] == ["RayGPUWorker", "MedSSRWorkerExtension"]


def test_generate_batches_and_seeds_decide_the_tokens(fake_trtllm, tiny_dir):
    engine = make_engine(fake_trtllm, tiny_dir, max_batch_size=2)
    sampling = SamplingParams(temperature=1.0, max_new_tokens=5)
    prompts = PROMPTS + [PROMPTS[0]] * 2
    out = engine.generate(prompts, sampling, seeds=[7, 8, 9, 7, 11])
    assert [e for e in engine.llm.events if e.startswith("generate")] == ["generate:2", "generate:2", "generate:1"]
    assert out[3].token_ids == out[0].token_ids            # same prompt + seed, other batch
    assert all(c.weight_version == 0 and len(c.logprobs) == len(c.token_ids) for c in out)
    again = engine.generate([PROMPTS[0]], sampling, seeds=[7])
    assert again[0].token_ids == out[0].token_ids


def test_logprobs_align_with_a_teacher_forced_forward(fake_trtllm, tiny_dir):
    from transformers import AutoModelForCausalLM

    engine = make_engine(fake_trtllm, tiny_dir)
    completion = engine.generate([PROMPTS[1]], SamplingParams(temperature=1.0, max_new_tokens=6), seeds=[3])[0]
    reference = AutoModelForCausalLM.from_pretrained(tiny_dir, dtype=torch.float32).eval()
    ids = torch.tensor([PROMPTS[1] + completion.token_ids])
    with torch.no_grad():
        logp = torch.log_softmax(reference(ids).logits[0, :-1].float(), -1)
    start = len(PROMPTS[1]) - 1
    expected = [float(logp[start + i, t]) for i, t in enumerate(completion.token_ids)]
    assert completion.logprobs == pytest.approx(expected, abs=1e-5)


def test_stop_token_is_kept_in_the_output(fake_trtllm, tiny_dir):
    engine = make_engine(fake_trtllm, tiny_dir)
    greedy = SamplingParams(temperature=0.0, max_new_tokens=4)
    first = engine.generate([PROMPTS[0]], greedy, seeds=[0])[0].token_ids[0]
    stopped = engine.generate([PROMPTS[0]], SamplingParams(temperature=0.0, max_new_tokens=4,
                                                           stop_token_ids=(first,)), seeds=[0])[0]
    assert stopped.token_ids == [first] and stopped.finish_reason == "stop" and len(stopped.logprobs) == 1


def test_allowed_token_ids_restrict_the_choice(fake_trtllm, tiny_dir):
    from transformers import AutoModelForCausalLM

    engine = make_engine(fake_trtllm, tiny_dir)
    allowed = (330, 347, 356, 373)  # as the evaluation's letters would be
    out = engine.generate([PROMPTS[2]], SamplingParams(temperature=0.0, max_new_tokens=1,
                                                       allowed_token_ids=allowed), seeds=[0])[0]
    reference = AutoModelForCausalLM.from_pretrained(tiny_dir, dtype=torch.float32).eval()
    with torch.no_grad():
        logits = reference(torch.tensor([PROMPTS[2]])).logits[0, -1]
    assert out.token_ids == [allowed[int(torch.argmax(logits[list(allowed)]))]]


# ---------------------------------------------------------------- refit
def test_colocated_refit_loads_every_tensor_then_resets_the_cache(fake_trtllm, tiny_dir, policy_model):
    # one process = one GPU: colocated TP>1 needs one training rank per engine GPU (IPC handles
    # are per device), which the distributed test covers
    engine = make_engine(fake_trtllm, tiny_dir, bucket_mb=1,
                         verify_tensors=("model.norm.weight", "model.layers.0.input_layernorm.weight"))
    named = hf_named(policy_model)
    assert engine.update_weights(named) == 1 and engine.weight_version == 1
    for worker in engine.llm.workers:
        state = hf_state(worker)
        assert all(torch.equal(state[name], tensor) for name, tensor in named)
    sizes = [t.numel() * t.element_size() for _, t in named]
    n_buckets = len(plan_buckets(sizes, 2**20))
    rpcs = [e for e in engine.llm.events if e.startswith("rpc:")]
    assert rpcs == (["rpc:medssr_begin_refit"] + ["rpc:update_weights"] * n_buckets
                    + ["rpc:update_weights:final", "rpc:reset_prefix_cache", "rpc:medssr_finish_refit",
                       "rpc:medssr_memory"])   # the ledger's "refit done" row, measured in the workers
    # every prefix-cache reset comes after the last bucket landed and before the check
    events = engine.llm.events
    last_bucket = max(i for i, e in enumerate(events) if e == "rpc:update_weights")
    resets = [i for i, e in enumerate(events) if e == "reset_prefix_cache"]
    assert len(resets) == 2 and min(resets) > last_bucket  # the finaliser's and the explicit one
    # and generation now samples from the new weights
    greedy = SamplingParams(temperature=0.0, max_new_tokens=3)
    out = engine.generate([PROMPTS[0]], greedy, seeds=[0])[0]
    ids = list(PROMPTS[0])
    with torch.no_grad():
        for _ in range(3):
            ids.append(int(policy_model(torch.tensor([ids])).logits[0, -1].argmax()))
    assert out.token_ids == ids[len(PROMPTS[0]):] and out.weight_version == 1


def test_refit_casts_to_the_engine_dtype_and_checks_it(fake_trtllm, tiny_dir, policy_model):
    engine = make_engine(fake_trtllm, tiny_dir, dtype="bfloat16")
    engine.update_weights(hf_named(policy_model))  # the fake keeps float32; bf16 values fit exactly
    norm = hf_state(engine.llm.workers[0])["model.norm.weight"]
    assert torch.equal(norm, policy_model.state_dict()["model.norm.weight"].bfloat16().float())


def test_lost_bucket_is_detected_and_generation_refused(fake_trtllm, tiny_dir, policy_model):
    engine = make_engine(fake_trtllm, tiny_dir, placement="separate", tensor_parallel_size=2, bucket_mb=1,
                         refit_backend="gloo", refit_master_port=_free_port(),
                         verify_tensors=("model.layers.0.input_layernorm.weight", "model.norm.weight"))
    engine.llm.workers[1].engine.drop_weights = {"model.norm.weight"}  # worker 1 silently loses one tensor
    with pytest.raises(StaleWeightsError, match=r"worker 1: checksum of 'model.norm.weight'"):
        engine.update_weights(hf_named(policy_model))
    assert engine.weight_version == 0
    with pytest.raises(StaleWeightsError, match="refusing to generate"):
        engine.generate([PROMPTS[0]], SamplingParams(max_new_tokens=2), seeds=[0])
    engine.llm.workers[1].engine.drop_weights = set()
    assert engine.update_weights(hf_named(policy_model)) == 2   # a good refit clears the state
    assert engine.generate([PROMPTS[0]], SamplingParams(max_new_tokens=2), seeds=[0])[0].weight_version == 2


def test_failed_finalise_leaves_the_engine_stale(fake_trtllm, tiny_dir, policy_model):
    engine = make_engine(fake_trtllm, tiny_dir)
    engine.llm.workers[0].engine.fail_finalize = True
    with pytest.raises(RuntimeError, match="post-load hook failed"):
        engine.update_weights(hf_named(policy_model))
    with pytest.raises(StaleWeightsError):
        engine.generate([PROMPTS[0]], SamplingParams(max_new_tokens=2), seeds=[0])


def test_verify_tensor_missing_from_export_is_an_error(fake_trtllm, tiny_dir, policy_model):
    engine = make_engine(fake_trtllm, tiny_dir, verify_tensors=("model.layers.7.input_layernorm.weight",))
    with pytest.raises(StaleWeightsError, match="exported no tensor named"):
        engine.update_weights(hf_named(policy_model))


def test_verify_tensor_the_engine_does_not_know_is_refused_at_construction(fake_trtllm, tiny_dir):
    with pytest.raises(KeyError, match="no engine parameter known for 'model.final_norm.weight'"):
        make_engine(fake_trtllm, tiny_dir, verify_tensors=("model.final_norm.weight",))


def test_dummy_load_format_refuses_to_generate_before_the_first_refit(fake_trtllm, tiny_dir, policy_model):
    engine = make_engine(fake_trtllm, tiny_dir, load_format="dummy")
    with pytest.raises(StaleWeightsError):
        engine.generate([PROMPTS[0]], SamplingParams(max_new_tokens=1), seeds=[0])
    engine.update_weights(hf_named(policy_model))
    assert len(engine.generate([PROMPTS[0]], SamplingParams(max_new_tokens=1), seeds=[0])) == 1


def _free_port_pair() -> int:
    """A port p with p + 1 also free (the refit stores of engines 0 and 1)."""
    for _ in range(50):
        base = _free_port()
        with socket.socket() as probe:
            try:
                probe.bind(("", base + 1))
            except OSError:
                continue
        return base
    raise RuntimeError("no two consecutive free ports")


def refit_address_on_route(master: str) -> str:
    from medssr_nemo.rollout.trtllm.engine_groups import local_address

    return local_address({"MASTER_ADDR": master})


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_separate_gpus_refit_by_broadcast_over_a_real_gloo_group(fake_trtllm, tiny_dir, policy_model):
    engine = make_engine(fake_trtllm, tiny_dir, placement="separate", tensor_parallel_size=2, bucket_mb=1,
                         refit_backend="gloo", refit_master_port=_free_port())
    named = hf_named(policy_model)
    engine.update_weights(named)
    for worker in engine.llm.workers:
        state = hf_state(worker)
        assert all(torch.equal(state[name], tensor) for name, tensor in named)
    n_buckets = len(plan_buckets([t.numel() * t.element_size() for _, t in named], 2**20))
    assert engine.llm.events.count("rpc:medssr_receive_bucket") == n_buckets


# ---------------------------------------------------------------- sleep / wake / colocated memory
def _trainer_with_adam_state():
    from medssr_nemo.policy.trainer_memory import TorchTrainerMemory

    model = torch.nn.Linear(16, 16)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.ones(2, 16)).sum().backward()
    optimizer.step()
    return model, optimizer, TorchTrainerMemory(optimizer, model)


def test_colocated_refit_moves_memory_in_order_and_logs_a_ledger(fake_trtllm, tiny_dir, policy_model, caplog,
                                                                 monkeypatch):
    import sys

    engine = make_engine(fake_trtllm, tiny_dir)
    executor = engine.llm.workers[0].engine
    # no CUDA here: the worker's GPU counters read as (device + 1) MiB, 2x and 3x that
    extension = sys.modules[type(engine.llm.workers[0]).medssr_memory.__module__]
    monkeypatch.setattr(extension, "_cuda_memory", lambda device: {
        "allocated": (device + 1) * MIB, "reserved": 2 * (device + 1) * MIB, "device_used": 3 * (device + 1) * MIB})
    model, optimizer, memory = _trainer_with_adam_state()
    engine.attach_trainer_memory(memory)
    adam_bytes = 2 * sum(p.numel() * 4 for p in model.parameters())   # exp_avg + exp_avg_sq, float32
    caplog.set_level("INFO", logger="medssr_nemo.rollout.trtllm.colocation")
    engine.sleep()                                   # after rollouts: the engine hands over its memory
    assert {t.value for t in executor.released} == set(engine.options.sleep_tags)
    model(torch.ones(2, 16)).sum().backward()        # the update: gradients exist again
    engine.update_weights(hf_named(policy_model))
    assert executor.released == set()
    rows = {row.phase: row for row in engine.ledger.rows}
    assert engine.ledger.phases() == ["engine asleep", "trainer state on GPU", "trainer state offloaded",
                                      "engine weights awake", "refit done", "engine KV cache awake"]
    assert rows["trainer state on GPU"].trainer["optimizer"] == adam_bytes and rows["engine asleep"].engine_awake == ()
    offloaded = rows["trainer state offloaded"]
    assert offloaded.trainer["optimizer"] == 0 and offloaded.trainer["grads"] == 0 and offloaded.engine_awake == ()
    assert "kv_cache" not in rows["engine weights awake"].engine_awake and "model" in rows["engine weights awake"].engine_awake
    assert "kv_cache" not in rows["refit done"].engine_awake
    assert set(rows["engine KV cache awake"].engine_awake) == set(engine.options.sleep_tags)
    # every phase measured inside each engine worker, over the engine's RPC
    assert all(row.engine_workers == ({"rank": 0, "allocated": MIB, "reserved": 2 * MIB, "device_used": 3 * MIB},)
               for row in engine.ledger.rows)
    logged = [r.getMessage() for r in caplog.records if r.getMessage().startswith("memory ledger")]
    assert len(logged) == 6 and "trainer state offloaded" in logged[2] and "optimizer=0.0MiB" in logged[2]
    assert all("engine workers: rank 0 allocated=1.0MiB reserved=2.0MiB device_used=3.0MiB" in line for line in logged)
    # on the engine side: weights woken before the first bucket, the KV cache after the check
    events = engine.llm.events
    wakes = [i for i, e in enumerate(events) if e == "rpc:wakeup"]
    assert len(wakes) == 2 and wakes[0] < events.index("rpc:medssr_begin_refit")
    assert wakes[1] > events.index("rpc:medssr_finish_refit")
    engine.sleep()                                   # the next update gets its optimizer state back
    assert not memory.offloaded and memory.held()["optimizer"] == adam_bytes
    engine.generate([PROMPTS[0]], SamplingParams(max_new_tokens=1), seeds=[0])   # wakes everything
    assert executor.released == set()


def test_sleep_is_refused_by_an_engine_built_without_sleep_settings(fake_trtllm, tiny_dir):
    engine = make_engine(fake_trtllm, tiny_dir, placement="separate", refit_backend="gloo",
                         refit_master_addr="127.0.0.1", refit_master_port=_free_port())
    with pytest.raises(ValueError, match="Sleep feature is not enabled"):
        engine.rpc.call("sleep", ["kv_cache"])   # RayGPUWorker.sleep checks the LLM's sleep settings


def test_refit_runs_the_weight_hooks_in_the_real_order(fake_trtllm, tiny_dir, policy_model):
    engine = make_engine(fake_trtllm, tiny_dir, bucket_mb=1)
    from tensorrt_llm import _fake_ipc

    _fake_ipc.REBUILT_ON.clear()     # byte_handle leaves argument 6 None: update_weights must fill it
    engine.update_weights(hf_named(policy_model))
    events = [e for e in engine.llm.events if e.startswith(("hook:", "reload:", "reset_prefix", "control:update"))]
    first_reload = next(i for i, e in enumerate(events) if e.startswith("reload:"))
    assert events[:2] == ["control:update_weights", "hook:pre_reload_weights"] and first_reload == 2
    assert events.count("hook:pre_reload_weights") == 1        # once per reload cycle, not per bucket
    tail = events[events.index("hook:process_weights_after_loading"):]
    assert tail[:3] == ["hook:process_weights_after_loading", "hook:post_load_weights", "reset_prefix_cache"]
    assert _fake_ipc.REBUILT_ON and set(_fake_ipc.REBUILT_ON) == {engine.llm.workers[0].device_id}


def test_release_without_the_sampled_token_in_logprobs_gives_nan(fake_trtllm, tiny_dir, monkeypatch):
    import math

    from tensorrt_llm.llmapi import llm as fake_llm

    monkeypatch.setattr(fake_llm, "SAMPLED_TOKEN_IN_LOGPROBS", False)
    engine = make_engine(fake_trtllm, tiny_dir)
    out = engine.generate([PROMPTS[0]] * 4, SamplingParams(temperature=1.0, max_new_tokens=8), seeds=[1, 2, 3, 4])
    nan = sum(math.isnan(v) for c in out for v in c.logprobs)
    assert nan == engine.missing_logprobs and nan > 0          # random sampling leaves the top-1 now and then
    assert all(len(c.logprobs) == len(c.token_ids) for c in out)


# ---------------------------------------------------------------- data-parallel engines
def test_engine_groups_cut_the_job_into_one_engine_per_tp_block():
    from medssr_nemo.rollout.trtllm.engine import job_groups
    from medssr_nemo.rollout.trtllm.engine_groups import refit_address

    groups = job_groups(TrtllmOptions(tensor_parallel_size=2), 8)   # TP 2 on an 8-GPU node: four engines
    assert [g.ranks for g in groups] == [(0, 1), (2, 3), (4, 5), (6, 7)] and [g.leader for g in groups] == [0, 2, 4, 6]
    separate = job_groups(TrtllmOptions(placement="separate", engine_replicas=2), 16)
    assert [g.ranks for g in separate] == [tuple(range(8)), tuple(range(8, 16))]
    with pytest.raises(ValueError, match="cannot be split"):
        job_groups(TrtllmOptions(tensor_parallel_size=4, pipeline_parallel_size=2), 12)
    # the refit store of the group led by rank 0 listens on the job's rendezvous address
    assert refit_address(groups[0], None, {"MASTER_ADDR": "gpu01"}) == "gpu01"
    # other leaders: their source address on the route to the rendezvous (here a loopback one,
    # as the rendezvous is), never a bare host name that may resolve to 127.0.1.1 elsewhere
    assert refit_address(groups[1], None, {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"}) == "127.0.0.1"
    assert refit_address(groups[1], None, {}) == socket.gethostbyname(socket.getfqdn())
    assert refit_address(groups[1], "10.0.0.7", {}) == "10.0.0.7"
    assert TrtllmOptions().refit_master_addr is None
    from medssr_nemo.rollout.trtllm.engine_groups import engine_visible_devices

    assert engine_visible_devices(groups[2], 4, 4, None) == "4,5"
    assert engine_visible_devices(groups[1], 2, 2, "GPU-a,GPU-b,GPU-c,GPU-d") == "GPU-c,GPU-d"
    with pytest.raises(ValueError, match="needs local GPUs"):
        engine_visible_devices(groups[3], 6, 6, "0,1")


@pytest.mark.distributed
def test_each_engine_serves_its_own_groups_prompts(tiny_dir, tmp_path):
    import json
    import os
    import subprocess

    worker = Path(__file__).with_name("trtllm_dp_worker.py")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MEDSSR_TEST_REFIT_PORT": str(_free_port_pair())}
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "4",
                          str(worker), str(tmp_path), tiny_dir], env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(4)]
    assert [(r["group"], r["leader"]) for r in ranks] == [(0, True), (0, False), (1, True), (1, False)]
    # each leader's engine generated exactly its group's prompts: 2 + 1, twice (before and after the refit)
    assert ranks[0]["generated"] == ["generate:3", "generate:3"] and ranks[2]["generated"] == ["generate:3", "generate:3"]
    assert ranks[1]["generated"] is None and ranks[3]["generated"] is None   # no LLM off the leaders
    # ranks 0 and 2 sent the same first prompt and seed to different engines: same tokens
    assert ranks[0]["before"][0] == ranks[2]["before"][0] and ranks[0]["after"][0] == ranks[2]["after"][0]
    assert all(r["version"] == 1 and set(r["after_versions"]) == {1} for r in ranks)
    # each engine's workers were started seeing only their block's GPUs; the trainer's env is unchanged
    assert [r["engine_devices"] for r in ranks] == ["0,1", None, "2,3", None]
    assert all(r["own_devices"] is None for r in ranks)
    # separate replicas: every rank holds the same published table; group 0 listens on the
    # rendezvous address, group 1 (led by rank 2) on its own address on the route to it; each
    # leader's broadcast refit reached its engine
    master = ranks[0]["master_addr"]
    expected_second = refit_address_on_route(master)
    assert all(r["refit_addresses"] == [master, expected_second] for r in ranks), [r["refit_addresses"] for r in ranks]
    assert all(r["separate_version"] == 1 for r in ranks)
    assert ranks[0]["separate_received"] > 0 and ranks[2]["separate_received"] > 0


def test_engine_workers_start_without_the_srun_tasks_pmi_and_slurm_variables(fake_trtllm, tiny_dir, monkeypatch):
    import os

    for key in ("SLURM_PROCID", "SLURM_JOB_ID", "PMI_RANK", "PMIX_RANK", "OMPI_COMM_WORLD_SIZE"):
        monkeypatch.setenv(key, "7")
    monkeypatch.setenv("NCCL_DEBUG", "WARN")
    engine = make_engine(fake_trtllm, tiny_dir)
    spawned = engine.llm.spawn_env
    assert not [k for k in spawned if k.startswith(("SLURM_", "PMI_", "PMIX_", "OMPI_"))]
    assert spawned["NCCL_DEBUG"] == "WARN"
    assert os.environ["SLURM_PROCID"] == "7" and os.environ["PMIX_RANK"] == "7"   # the trainer keeps its own


def test_a_backend_that_offloads_its_own_optimizer_is_driven_not_duplicated():
    from medssr_nemo.policy.megatron.offload import TrainingStateMemory
    from medssr_nemo.rollout.trtllm.colocation import MemoryLedger

    class State:                    # the megatron backend's training_state (policy/megatron/offload.py)
        offloaded = False
        restored = 0

        def offload(self):
            self.offloaded = True

        def restore(self):
            self.restored += 1

        def held(self):
            return {"grads": 0 if self.offloaded else 4096, "optimizer": 0 if self.offloaded else 8192}

    state = State()
    memory = TrainingStateMemory(state)
    ledger = MemoryLedger()
    assert ledger.record("before release", (), memory).trainer == {"grads": 4096, "optimizer": 8192}
    memory.release()
    memory.restore()                # the backend's update restores its state itself: not the engine
    assert state.offloaded and state.restored == 0
    assert memory.note() == "backend-managed, offloaded=True"
    assert ledger.record("after release", (), memory).trainer == {"grads": 0, "optimizer": 0}


def test_the_hf_backend_declares_its_adam_state_as_trainer_memory():
    from medssr_nemo.config import load_config
    from medssr_nemo.models import make_tiny_model
    from medssr_nemo.policy.hf import HFPolicyBackend
    from medssr_nemo.policy.trainer_memory import TorchTrainerMemory

    model, tokenizer = make_tiny_model("llama", seed=0)
    policy = HFPolicyBackend(load_config("base").policy, model=model, tokenizer=tokenizer, reference=False,
                             total_steps=1)
    memory = policy.trainer_memory()
    assert isinstance(memory, TorchTrainerMemory)
    assert memory.optimizer is policy.optimizer and memory.module is policy.model
