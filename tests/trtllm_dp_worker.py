"""One rank of the data-parallel engine test (torchrun, gloo, CPU, the FAKE TensorRT-LLM):
world 4, colocated TP 2 -> two engines, each serving its group's prompts; then a refit. Then
two separate-GPU engine replicas, each refitted by broadcast from its leader's published address."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist

sys.path.insert(0, str(Path(__file__).parent / "fakes"))


def main(out_dir: str, model_dir: str) -> None:
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    import tensorrt_llm
    from tensorrt_llm._fake_ipc import byte_handle
    from transformers import AutoTokenizer

    from medssr_nemo.models import make_tiny_model
    from medssr_nemo.rollout.interfaces import SamplingParams
    from medssr_nemo.rollout.trtllm.engine import TensorRTLLMEngine
    from medssr_nemo.rollout.trtllm.options import TrtllmOptions

    # the fake's engine workers are devices 0..TP-1 of each engine, as each group's GPUs would be
    options = TrtllmOptions(dtype="float32", tensor_parallel_size=2, device_index=rank % 2, bucket_mb=1,
                            verify_tensors=("model.norm.weight",))
    engine = TensorRTLLMEngine(model_dir, AutoTokenizer.from_pretrained(model_dir), options, trtllm=tensorrt_llm)
    engine.refitter.transport.make_handle = byte_handle
    prompts = [[1, 520, 33, 812], [1, 77, 3000, rank]] if rank in (0, 2) else [[1, 9, 9, rank]]
    seeds = [11, 12] if rank in (0, 2) else [rank]
    before = engine.generate(prompts, SamplingParams(temperature=1.0, max_new_tokens=4), seeds)
    version = engine.update_weights(iter(make_tiny_model("llama", seed=1)[0].state_dict().items()))
    after = engine.generate(prompts, SamplingParams(temperature=0.0, max_new_tokens=3), seeds)
    record = {"rank": rank, "group": engine.group.index, "leader": engine.is_leader, "version": version,
              "before": [c.token_ids for c in before], "after": [c.token_ids for c in after],
              "after_versions": [c.weight_version for c in after],
              "engine_devices": engine.llm.spawn_env.get("CUDA_VISIBLE_DEVICES") if engine.llm else None,
              "own_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
              "generated": [e for e in engine.llm.events if e.startswith("generate")] if engine.llm else None}
    engine.shutdown()
    # separate GPUs: two engine replicas, each leader refitting its engine by broadcast from the
    # address it published to every rank (all_gather_object over this gloo group)
    separate = TrtllmOptions(dtype="float32", placement="separate", engine_replicas=2, bucket_mb=1,
                             refit_backend="gloo", refit_master_port=int(os.environ["MEDSSR_TEST_REFIT_PORT"]),
                             verify_tensors=("model.norm.weight",))
    replica = TensorRTLLMEngine(model_dir, AutoTokenizer.from_pretrained(model_dir), separate, trtllm=tensorrt_llm)
    record["separate_version"] = replica.update_weights(iter(make_tiny_model("llama", seed=2)[0].state_dict().items()))
    record["refit_addresses"] = replica.refit_addresses
    record["master_addr"] = os.environ.get("MASTER_ADDR")
    record["separate_received"] = (replica.llm.events.count("rpc:medssr_receive_bucket") if replica.llm else None)
    replica.shutdown()
    Path(out_dir, f"rank{rank}.json").write_text(json.dumps(record))
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    torch.set_num_threads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main(sys.argv[1], sys.argv[2])
