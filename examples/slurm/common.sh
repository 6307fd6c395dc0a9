# shellcheck shell=bash
# Shared by the sbatch scripts here: run `medssr run` (the whole pipeline; MEDSSR_COMMAND=train for
# GRPO alone) with one task per GPU inside the
# container (pyxis/enroot), rendezvous on the first node of the allocation. The srun line is the
# one `medssr launch --dry-run` prints for the same overrides (tests/test_slurm.py checks it).
#
# Environment:
#   MEDSSR_IMAGE   (required) the image built from the repository's Dockerfile: a registry path
#                  (docker://... / nvcr.io/...) or an enroot .sqsh file
#   MEDSSR_MOUNTS  host:container mounts, comma separated (default: the submit dir on /workspace/run)
#   MEDSSR_DATA    the data root on the host (default: the project's rule, docs/data.md: ../shared/data
#                  beside the submit dir, else ${XDG_CACHE_HOME:-~/.cache}/medssr_nemo/data); always
#                  mounted at /workspace/data, which the container's MEDSSR_DATA names. Fill it first on a
#                  machine with network: `medssr data download --dest DIR` (a run fetches what is missing)
#   MEDSSR_CONFIG  config name or YAML path inside the container (default: base)
#   MEDSSR_COMMAND the medssr sub-command every rank runs (default: run, the whole pipeline)
#   MASTER_PORT    rendezvous port (default 29500)

medssr_srun() {
  local nodes="${SLURM_JOB_NUM_NODES:?run this script with sbatch}"
  local gpus="${SLURM_GPUS_ON_NODE:-8}"
  local image="${MEDSSR_IMAGE:?set MEDSSR_IMAGE to the image built from the repository Dockerfile}"
  local mounts="${MEDSSR_MOUNTS:-${SLURM_SUBMIT_DIR:-$PWD}:/workspace/run}"
  local data="${MEDSSR_DATA:-}"
  if [[ -z "${data}" && -d "${SLURM_SUBMIT_DIR:-$PWD}/../shared/data" ]]; then
    data="$(cd "${SLURM_SUBMIT_DIR:-$PWD}/../shared/data" && pwd)"
  fi
  data="${data:-${XDG_CACHE_HOME:-$HOME/.cache}/medssr_nemo/data}"
  mkdir -p "${data}"
  mounts="${mounts},${data}:/workspace/data"
  export MEDSSR_DATA=/workspace/data     # inside the container
  local hosts
  hosts="$(scontrol show hostnames "${SLURM_JOB_NODELIST:?}")"   # read all: `| head -n 1` can SIGPIPE under pipefail
  MASTER_ADDR="${hosts%%$'\n'*}"
  export MASTER_ADDR
  export MASTER_PORT="${MASTER_PORT:-29500}"
  local command="${MEDSSR_COMMAND:-run}"
  local overrides=("$@"
    "launch.nodes=${nodes}" "launch.gpus_per_node=${gpus}"
    "launch.container_image=${image}" "launch.container_mounts=[${mounts}]"
    "launch.master_port=${MASTER_PORT}" "launch.command=${command}")
  echo "medssr: ${nodes} node(s) x ${gpus} GPUs, rendezvous ${MASTER_ADDR}:${MASTER_PORT}, data ${data}" >&2
  srun --nodes="${nodes}" --ntasks-per-node="${gpus}" --gpus-per-node="${gpus}" --kill-on-bad-exit=1 \
    --container-image="${image}" --container-mounts="${mounts}" \
    python -m medssr_nemo.launch.slurm_env medssr "${command}" --config "${MEDSSR_CONFIG:-base}" "${overrides[@]}"
}
