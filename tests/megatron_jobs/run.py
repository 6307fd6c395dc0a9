"""torchrun worker for tests/test_megatron_backend.py: runs megatron-backend scenarios on tiny
Hugging Face checkpoints and writes what it measured to JSON (rank 0) for pytest to judge.

    python -m torch.distributed.run --nproc_per_node 2 tests/megatron_jobs/run.py SPEC.json OUT.json

SPEC: {"models": {name: hf_dir}, "out_dir": dir, and any of "parity", "grpo", "checkpoint"
holding that scenario's settings (see each scenario)}; OUT gets one result per scenario. Every rank passes its own share of the batch (rows rank::world), as the GRPO trainer
does, so a layout with data parallelism sees each row exactly once.

Top-level imports stay light: dist_checkpointing spawns a helper process that imports this file.
"""

from __future__ import annotations

import json
import os
import sys
import time


def _setup():
    import torch

    torch.set_num_threads(1)  # two processes share two cores
    from medssr_nemo.policy.megatron.parallel import init_process_group

    init_process_group()


def _rank_world():
    import torch.distributed as dist

    return dist.get_rank(), dist.get_world_size()


def _share(batch, rank, world):
    return {k: v[rank::world] for k, v in batch.items()}


def _backend(path, tp, pp, *, reference=False, vocab_multiple=128, lr=1e-3, micro_batch_size=2, recompute=False,
             pack_tokens=0):
    from medssr_nemo.config.schema.policy import PolicyConfig
    from medssr_nemo.policy.megatron.backend import MegatronPolicyBackend

    cfg = PolicyConfig(lr=lr, micro_batch_size=micro_batch_size, grad_clip=1.0, gradient_checkpointing=recompute,
                       options={"vocab_multiple": vocab_multiple, "pack_tokens": pack_tokens})
    return MegatronPolicyBackend(cfg, path, reference=reference, tensor_parallel_size=tp, pipeline_parallel_size=pp)


def _token_batch(seed=0, vocab=5000):
    """6 right-padded rows of different lengths; prompts then responses."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    lengths, prompts = [7, 12, 5, 10, 9, 6], [3, 4, 2, 5, 3, 2]
    rows, width = len(lengths), max(lengths)
    ids = torch.full((rows, width), 2, dtype=torch.long)
    attention = torch.zeros((rows, width), dtype=torch.long)
    response = torch.zeros((rows, width))
    for row, (length, prompt) in enumerate(zip(lengths, prompts)):
        ids[row, :length] = torch.randint(10, vocab, (length,), generator=gen)
        attention[row, :length] = 1
        response[row, prompt:length] = 1
    return {"input_ids": ids, "attention_mask": attention, "response_mask": response}


def _hf_logprobs(hf_model, batch, temperature=1.0):
    import torch

    with torch.no_grad():
        logits = hf_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    lp = torch.log_softmax(logits.float() / temperature, -1)[:, :-1].gather(-1, batch["input_ids"][:, 1:, None]).squeeze(-1)
    lp = torch.cat([torch.zeros_like(lp[:, :1]), lp], 1)
    return lp * batch["attention_mask"]


def _load_hf(path):
    import torch
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()


def scenario_parity(spec, models):
    """For each case {model, tp, pp, vocab_multiple}: logits and logprobs against transformers,
    and the HF export against the checkpoint file, bit for bit."""
    import torch
    from safetensors.torch import load_file

    rank, world = _rank_world()
    results = []
    hf_models = {}
    for case in spec["cases"]:
        path = models[case["model"]]
        hf = hf_models.setdefault(case["model"], _load_hf(path))
        started = time.time()
        backend = _backend(path, case["tp"], case["pp"], vocab_multiple=case.get("vocab_multiple", 128))
        ids = _token_batch(seed=1)["input_ids"]
        with torch.no_grad():
            expected_logits = hf(input_ids=ids).logits
        logits = backend.full_logits(ids)
        batch = _token_batch(seed=2)
        expected_lp = _hf_logprobs(hf, batch)
        mine = _share(batch, rank, world)
        lp = backend.logprobs(mine)
        hot = _hf_logprobs(hf, batch, temperature=0.7)
        lp_hot = backend.logprobs(mine, temperature=0.7)
        on_disk = load_file(os.path.join(path, "model.safetensors"))
        exported = dict(backend.export_hf_weights())
        mismatched = sorted(n for n in on_disk if n not in exported or not torch.equal(exported[n], on_disk[n]))
        import torch.distributed as dist

        local_parameters = [None] * world  # each rank's shard of the megatron model (the memory plan's n)
        dist.all_gather_object(local_parameters, sum(p.numel() for p in backend.megatron_model.parameters()))
        results.append({
            **case,
            "padded_vocab_size": backend.arch.padded_vocab_size,
            "vocab_size": backend.arch.vocab_size,
            "logits_shape": list(logits.shape),
            "logits_max_abs_diff": float((logits - expected_logits).abs().max()),
            "logits_scale": float(expected_logits.abs().max()),
            "logprobs_max_abs_diff": float((lp - _share({"x": expected_lp}, rank, world)["x"]).abs().max()),
            "logprobs_t07_max_abs_diff": float((lp_hot - _share({"x": hot}, rank, world)["x"]).abs().max()),
            "export_names_equal": sorted(exported) == sorted(on_disk),
            "export_mismatched": mismatched,
            "local_parameters": local_parameters,
            "seconds": time.time() - started,
        })
    return results


def _grpo_batch(hf, seed=3):
    """Token batch + advantages + old/reference logprobs near the initial policy's own."""
    import torch

    batch = _token_batch(seed=seed)
    gen = torch.Generator().manual_seed(seed + 100)
    policy = _hf_logprobs(hf, batch)
    batch["advantages"] = torch.tensor([1.0, -0.5, 0.7, -1.2, 0.3, -0.9])
    batch["old_logprobs"] = policy + 0.05 * torch.randn(policy.shape, generator=gen)
    batch["ref_logprobs"] = policy + 0.1 * torch.randn(policy.shape, generator=gen)
    return batch


def _loss_fn(entropy_only=False):
    """The GRPO loss (clip, dual clip, k3 KL); ``entropy_only``: only the entropy bonus (with zero
    advantages and no KL), so the whole gradient flows through the entropy."""
    from medssr_nemo.config.schema.grpo import GRPOConfig
    from medssr_nemo.grpo.losses import make_grpo_loss

    if entropy_only:
        return make_grpo_loss(GRPOConfig(kl_coef=0.0, entropy_coef=1.0))
    return make_grpo_loss(GRPOConfig(kl_coef=0.05, clip_low=0.2, clip_high=0.2, dual_clip=3.0))


def _for_loss(batch, entropy_only):
    import torch

    return {**batch, "advantages": torch.zeros_like(batch["advantages"])} if entropy_only else batch


def _step_record(metrics):
    return {k: float(v) for k, v in metrics.items()}


def scenario_grpo(spec, models):
    """Per layout {name, tp, pp, entropy_only?, recompute?, pack_tokens?}: ``steps`` GRPO steps on
    the same batch; the losses, gradient norms and the final weights (saved by rank 0 for pytest to
    compare across layouts). ``entropy_only`` trains on the entropy bonus alone (the gradient of
    the vocabulary-parallel entropy); ``recompute`` turns on activation recomputation;
    ``pack_tokens`` packs the rows into micro-batches of that many tokens."""
    import torch

    rank, world = _rank_world()
    path = models[spec["model"]]
    hf = _load_hf(path)
    batch = _grpo_batch(hf)
    mine = _share(batch, rank, world)
    results = []
    for layout in spec["layouts"]:
        backend = _backend(path, layout["tp"], layout["pp"], reference=True, recompute=layout.get("recompute", False),
                           pack_tokens=layout.get("pack_tokens", 0))
        loss_fn = _loss_fn(layout.get("entropy_only", False))
        data = _for_loss(mine, layout.get("entropy_only", False))
        initial_diff = float((backend.logprobs(mine) - _share({"x": _hf_logprobs(hf, batch)}, rank, world)["x"]).abs().max())
        steps = [_step_record(backend.train_step(data, loss_fn)) for _ in range(spec["steps"])]
        micro_tokens = backend.last_micro_batch_tokens
        final = {name: tensor.clone() for name, tensor in backend.export_hf_weights()}
        ref_after = float((backend.reference_logprobs(mine) - _share({"x": _hf_logprobs(hf, batch)}, rank, world)["x"]).abs().max())
        weights_file = os.path.join(spec["out_dir"], f"weights_{layout['name']}.pt")
        if rank == 0:
            torch.save(final, weights_file)
        results.append({**layout, "steps": steps, "weights_file": weights_file, "micro_batch_tokens": micro_tokens,
                        "initial_logprob_diff": initial_diff, "reference_after_training_diff": ref_after})
    if spec.get("hf_backend"):
        results.append(_hf_backend_run(spec, path, mine, entropy_only=False))
        results.append(_hf_backend_run(spec, path, mine, entropy_only=True))
    return results


def _hf_backend_run(spec, path, batch, entropy_only):
    """The ``hf`` backend on the same batch and loss: an independent reference for the maths."""
    import torch

    from medssr_nemo.config.schema.policy import PolicyConfig
    from medssr_nemo.models import load_tokenizer
    from medssr_nemo.policy.hf import HFPolicyBackend

    rank, _ = _rank_world()
    cfg = PolicyConfig(lr=1e-3, micro_batch_size=2, grad_clip=1.0)
    backend = HFPolicyBackend(cfg, model=_load_hf(path), tokenizer=load_tokenizer(path), reference=False)
    loss_fn, data = _loss_fn(entropy_only), _for_loss(batch, entropy_only)
    steps = [_step_record(backend.train_step(data, loss_fn)) for _ in range(spec["steps"])]
    final = {name: tensor.clone() for name, tensor in backend.model.named_parameters()}
    name = "hf_backend_entropy_only" if entropy_only else "hf_backend"
    weights_file = os.path.join(spec["out_dir"], f"weights_{name}.pt")
    if rank == 0:
        torch.save(final, weights_file)
    return {"name": name, "steps": steps, "weights_file": weights_file}


def scenario_checkpoint(spec, models):
    """Train one step at ``save_layout``, save, train two more (the uninterrupted run); then for
    each resume layout: build afresh, load, train the same two steps. Steps after the first
    depend on Adam's moments and step count, so they check the optimiser state too. The trained
    policy is also written with ``save_hf`` and reloaded with transformers."""
    import torch

    rank, world = _rank_world()
    path = models[spec["model"]]
    batch = _grpo_batch(_load_hf(path))
    mine = _share(batch, rank, world)
    directory = os.path.join(spec["out_dir"], "policy_ckpt")
    save = spec["save_layout"]
    backend = _backend(path, save["tp"], save["pp"], reference=True)
    first = _step_record(backend.train_step(mine, _loss_fn()))
    backend.save(directory)
    later = [_step_record(backend.train_step(mine, _loss_fn())) for _ in range(2)]
    final = {name: tensor.clone() for name, tensor in backend.export_hf_weights()}
    hf_dir = os.path.join(spec["out_dir"], "hf_export")
    backend.save_hf(hf_dir)  # collective; the trained policy as a Hugging Face directory
    ids = _token_batch(seed=4)["input_ids"]
    with torch.no_grad():
        reloaded_logits = _load_hf(hf_dir)(input_ids=ids).logits
    save_hf = {"files": sorted(os.listdir(hf_dir)),
               "logits_max_abs_diff": float((reloaded_logits - backend.full_logits(ids)).abs().max())}
    resumed = []
    for layout in spec["resume_layouts"]:
        backend = _backend(path, layout["tp"], layout["pp"], reference=True)
        backend.load(directory)
        step_after_load = backend.step
        steps = [_step_record(backend.train_step(mine, _loss_fn())) for _ in range(2)]
        weights = dict(backend.export_hf_weights())
        resumed.append({**layout, "step_after_load": step_after_load, "later": steps,
                        "weights_bit_equal": all(torch.equal(weights[n], final[n]) for n in final),
                        "weights_max_abs_diff": max(float((weights[n] - final[n]).abs().max()) for n in final)})
    files = sorted(os.listdir(directory))
    return {"first": first, "later": later, "resumed": resumed, "checkpoint_files": files, "save_hf": save_hf}


def scenario_offload(spec, models):
    """What leaves the GPU when, with CUDA simulated (a CPU has nothing to free): megatron-core's
    own offload calls and the parking of the reference and the rollout copy are recorded, in
    order, through one reference pass, one update and one refit."""
    from megatron.core.distributed import DistributedDataParallel
    from megatron.core.optimizer import ChainedOptimizer, MegatronOptimizer

    from medssr_nemo.policy.megatron import offload

    events = []
    real_grads_off = DistributedDataParallel.offload_grad_buffers
    offload._cuda = lambda: True
    patches = {(DistributedDataParallel, "offload_grad_buffers"): "grads off",
               (DistributedDataParallel, "restore_grad_buffers"): "grads on",
               (MegatronOptimizer, "offload_to_cpu"): "optimizer off",
               (MegatronOptimizer, "restore_from_cpu"): "optimizer on",
               (ChainedOptimizer, "offload_to_cpu"): "optimizer off",
               (ChainedOptimizer, "restore_from_cpu"): "optimizer on"}
    for (cls, name), event in patches.items():
        setattr(cls, name, lambda self, *a, _event=event, **k: events.append(_event))
    offload.park = lambda module: module is not None and events.append(("park", module))
    offload.unpark = lambda module, device: module is not None and events.append(("unpark", module))
    path = models[spec["model"]]
    backend = _backend(path, 1, 1, reference=True)
    events.append("-- built")
    names = {id(backend.reference_model): "reference", id(backend.rollout_module()): "rollout copy"}
    batch = _grpo_batch(_load_hf(path))
    events.append("-- reference pass")
    backend.reference_logprobs(batch)
    events.append("-- update")
    backend.train_step(batch, _loss_fn())
    events.append("-- refit")
    list(backend.export_hf_weights())
    # what the colocated ledger reads (the backend's declared trainer_memory()): measured before and
    # after megatron-core's real gradient-buffer release (it resizes the storage to 0; no sync on a CPU)
    memory = backend.trainer_memory()
    held_resident = memory.held()
    real_grads_off(backend.megatron_model, synchronize=False, empty_cache=False)
    held_after_grads_off = memory.held()
    trained = sum(p.numel() for p in backend.megatron_model.parameters() if p.requires_grad)
    return {"events": [e if isinstance(e, str) else f"{e[0]} {names.get(id(e[1]), '?')}" for e in events],
            "held_resident": held_resident, "held_after_grads_off": held_after_grads_off,
            "trained_params": trained}


def shorter_is_better(prompts, completions, **columns):
    """A reward a random tiny model can learn from: short completions are better."""
    return [max(0.0, 1.0 - len(text) / 40) for text in completions]


def scenario_trainer(spec, models):
    """The GRPO recipe with ``policy.backend=megatron`` (in-process rollouts refit from the
    megatron weights): an uninterrupted run of ``steps`` and a run stopped after ``steps - 1``
    and resumed from its checkpoint; the final HF weights of both, and the logged metrics."""
    import torch

    from medssr_nemo.config import load_config
    from medssr_nemo.grpo.metrics_log import read_metrics
    from medssr_nemo.grpo.trainer import GRPOTrainer
    from medssr_nemo.records import QuestionRecord

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    rank, _ = _rank_world()
    records = [QuestionRecord(id=f"q{i}", question=f"Question number {i}: which one?",
                              options=["alpha", "beta", "gamma", "delta"], gold="ABCD"[i % 4]) for i in range(8)]
    base = ["model.prompt_style=base", "grpo.group_size=4", "grpo.prompts_per_step=2", "grpo.kl_coef=0.01",
            "rollout.max_new_tokens=5", "rollout.top_k=4", "policy.lr=3e-3", "policy.micro_batch_size=4",
            "policy.backend=megatron", f"model.path={models[spec['model']]}",
            f"model.tensor_parallel_size={spec['tp']}", f"model.pipeline_parallel_size={spec['pp']}",
            "train.tensorboard=false", "train.save_hf=false", "train.save_every=1",
            "reward.sources.gold=[{name: 'run:shorter_is_better'}]"]

    def run(out, steps):
        cfg = load_config("base", [*base, f"output_dir={out}", f"train.steps={steps}"])
        trainer = GRPOTrainer(cfg, records=records, show_progress=False).setup()
        trainer.train()
        return trainer

    steps = spec["steps"]
    straight = run(os.path.join(spec["out_dir"], "straight"), steps)
    straight_weights = {n: t.clone() for n, t in straight.policy.export_hf_weights()}
    interrupted = os.path.join(spec["out_dir"], "interrupted")
    run(interrupted, steps - 1)
    resumed = run(interrupted, steps)
    resumed_weights = {n: t.clone() for n, t in resumed.policy.export_hf_weights()}
    max_diff = max(float((straight_weights[n] - resumed_weights[n]).abs().max()) for n in straight_weights)
    engine_diff = max(float((t - resumed.engine.model.state_dict()[n]).abs().max()) for n, t in resumed_weights.items())
    metrics = read_metrics(os.path.join(spec["out_dir"], "straight")) if rank == 0 else []
    return {"max_weight_diff_straight_vs_resumed": max_diff, "engine_vs_policy_weight_diff": engine_diff,
            "metrics": metrics, "resumed_step": resumed.step,
            "engine_weight_version": resumed.engine.weight_version}


def main() -> None:
    spec_path, out_path = sys.argv[1], sys.argv[2]
    with open(spec_path) as handle:
        spec = json.load(handle)
    _setup()
    scenarios = {"parity": scenario_parity, "grpo": scenario_grpo, "checkpoint": scenario_checkpoint,
                 "trainer": scenario_trainer, "offload": scenario_offload}
    rank, world = _rank_world()
    output = {"world": world, "seconds": {}}
    for name, run in scenarios.items():
        if name in spec:
            started = time.time()
            output[name] = run({**spec[name], "out_dir": spec["out_dir"]}, spec["models"])
            output["seconds"][name] = time.time() - started
    if rank == 0:
        tmp = out_path + ".tmp"
        with open(tmp, "w") as handle:
            json.dump(output, handle, indent=2)
        os.replace(tmp, out_path)
    import torch.distributed as dist

    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
