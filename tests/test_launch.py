"""Per-size configs, the parallel layout, `medssr launch --dry-run`, the Slurm rank mapping and
the memory plan (hand-worked and against published parameter counts)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from medssr_nemo.cli.main import main as medssr
from medssr_nemo.config import load_config
from medssr_nemo.launch.command import build_plan
from medssr_nemo.launch.layout import LayoutError, ParallelLayout, layout_of
from medssr_nemo.launch.memory import ARCHITECTURES
from medssr_nemo.launch.slurm_env import first_host, rank_env

SIZES = {  # name: (hub id, TP, PP, nodes), from docs/cluster.md's layouts for 8xH100 nodes
    "qwen3_1_7b": ("Qwen/Qwen3-1.7B-Base", 1, 1, 1),
    "qwen3_4b": ("Qwen/Qwen3-4B-Base", 1, 1, 1),
    "qwen3_8b": ("Qwen/Qwen3-8B-Base", 2, 1, 1),
    "qwen3_14b": ("Qwen/Qwen3-14B-Base", 4, 1, 1),
    "qwen3_32b": ("Qwen/Qwen3-32B", 8, 2, 2),
    "llama3_1_8b": ("meta-llama/Llama-3.1-8B-Instruct", 2, 1, 1),
}


@pytest.mark.parametrize("size", sorted(SIZES))
def test_each_model_size_composes_with_a_layout_that_divides_its_gpus(size):
    hub, tp, pp, nodes = SIZES[size]
    cfg = load_config("base", [f"model={size}"])
    assert (cfg.model.path, cfg.model.tensor_parallel_size, cfg.model.pipeline_parallel_size) == (hub, tp, pp)
    assert cfg.model.dtype == "bfloat16" and cfg.launch.nodes == nodes and cfg.launch.gpus_per_node == 8
    layout = layout_of(cfg)
    assert layout.world_size % (tp * pp) == 0 and layout.data_parallel * tp * pp == 8 * nodes
    assert cfg.model.path in ARCHITECTURES


def test_layout_that_does_not_divide_is_refused():
    with pytest.raises(LayoutError, match="does not divide"):
        ParallelLayout(1, 6, 4, 1).check()
    with pytest.raises(LayoutError, match="inside a node"):
        ParallelLayout(2, 4, 8, 1).check()


def test_dry_run_prints_the_srun_command(capsys):
    assert medssr(["launch", "--dry-run", "model=qwen3_32b", "launch.container_image=nvcr.io/nv/img:1",
                   "launch.container_mounts=[/data:/data]"]) == 0
    summary, command = capsys.readouterr().out.strip().splitlines()
    assert summary == "# 16 processes = 2 node(s) x 8 GPUs; TP 8 x PP 2 x DP 1"
    assert command == ("CUDA_DEVICE_MAX_CONNECTIONS=1 MASTER_PORT=29500 NCCL_DEBUG=WARN NCCL_IB_DISABLE=0 "
                       "TORCH_NCCL_ASYNC_ERROR_HANDLING=1 "
                       "srun --nodes=2 --ntasks-per-node=8 --gpus-per-node=8 --kill-on-bad-exit=1 --mpi=pmix "
                       "--container-image=nvcr.io/nv/img:1 --container-mounts=/data:/data "
                       "--container-workdir=/workspace/run --no-container-mount-home "
                       "python -m medssr_nemo.launch.slurm_env medssr run --config base model=qwen3_32b "
                       "launch.container_image=nvcr.io/nv/img:1 'launch.container_mounts=[/data:/data]'")


def test_dry_run_torchrun_and_bad_layout(capsys):
    assert medssr(["launch", "--dry-run", "model=qwen3_8b", "launch.launcher=torchrun", "launch.gpus_per_node=4"]) == 0
    assert capsys.readouterr().out.splitlines()[1] == (
        "CUDA_DEVICE_MAX_CONNECTIONS=1 MASTER_PORT=29500 NCCL_DEBUG=WARN NCCL_IB_DISABLE=0 "
        "TORCH_NCCL_ASYNC_ERROR_HANDLING=1 torchrun --standalone --nproc-per-node=4 -m medssr_nemo.cli.main run --config base "
        "model=qwen3_8b launch.launcher=torchrun launch.gpus_per_node=4")
    assert medssr(["launch", "--dry-run", "model=qwen3_14b", "launch.gpus_per_node=2"]) == 1
    assert "does not divide" in capsys.readouterr().err


def test_dry_run_without_an_image_has_no_container_flags_and_mpi_can_be_left_to_the_cluster(capsys):
    assert medssr(["launch", "--dry-run", "model=qwen3_8b", "launch.mpi=", "launch.container_mount_home=true"]) == 0
    command = capsys.readouterr().out.splitlines()[1]
    assert "--container" not in command and "--mpi" not in command
    cfg = load_config("base", ["launch.container_image=img.sqsh", "launch.container_mount_home=true",
                               "launch.container_workdir=/work"])
    argv = build_plan(cfg).argv
    assert "--container-workdir=/work" in argv and "--no-container-mount-home" not in argv


def test_launcher_variables_are_cleared_for_the_block_and_restored():
    from medssr_nemo.distributed import launcher_env_cleared

    env = {"SLURM_PROCID": "3", "PMI_RANK": "3", "PMIX_RANK": "3", "OMPI_COMM_WORLD_RANK": "3", "RANK": "3",
           "MASTER_ADDR": "gpu01", "NCCL_DEBUG": "WARN"}
    with launcher_env_cleared(env) as removed:
        assert env == {"RANK": "3", "MASTER_ADDR": "gpu01", "NCCL_DEBUG": "WARN"}
        assert set(removed) == {"SLURM_PROCID", "PMI_RANK", "PMIX_RANK", "OMPI_COMM_WORLD_RANK"}
    assert env["SLURM_PROCID"] == "3" and env["PMIX_RANK"] == "3"


def test_first_host_of_slurm_node_lists():
    assert first_host("gpu[03-05,09],cpu1") == "gpu03"
    assert first_host("a1,a2") == "a1" and first_host("node7") == "node7"
    assert first_host("n[001-004]-ib") == "n001-ib"


def test_rank_env_maps_slurm_task_variables():
    env = {"SLURM_PROCID": "11", "SLURM_LOCALID": "3", "SLURM_NTASKS": "16", "SLURM_NODEID": "1",
           "SLURM_TASKS_PER_NODE": "8(x2)", "SLURM_JOB_NODELIST": "dgx[12-13]"}
    assert rank_env(env) == {"RANK": "11", "LOCAL_RANK": "3", "WORLD_SIZE": "16", "LOCAL_WORLD_SIZE": "8",
                             "GROUP_RANK": "1", "MASTER_ADDR": "dgx12", "MASTER_PORT": "29500"}
    with pytest.raises(KeyError, match="srun"):
        rank_env({})


def test_slurm_env_execs_the_command_with_torch_variables():
    env = {**os.environ, "SLURM_PROCID": "1", "SLURM_LOCALID": "1", "SLURM_NTASKS": "2",
           "SLURM_TASKS_PER_NODE": "2", "SLURM_JOB_NODELIST": "host[5-6]", "MASTER_PORT": "31000"}
    code = "import os; print(*(os.environ[k] for k in ('RANK','LOCAL_RANK','WORLD_SIZE','MASTER_ADDR','MASTER_PORT')))"
    out = subprocess.run([sys.executable, "-m", "medssr_nemo.launch.slurm_env", sys.executable, "-c", code],
                         env=env, capture_output=True, text=True, timeout=120, check=True).stdout
    assert out.split() == ["1", "1", "2", "host5", "31000"]


def test_parameter_count_matches_llama_3_1_8b_published_total():
    assert ARCHITECTURES["meta-llama/Llama-3.1-8B-Instruct"].parameters() == 8_030_261_248
