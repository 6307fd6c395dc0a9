#!/usr/bin/env bash
# Run tests under transformers 4.57.1, the version TensorRT-LLM 1.2 (the container's base image)
# pins, without touching the project's virtual environment: transformers 4.57.1 and the tokenizers /
# huggingface-hub releases it accepts go to a separate directory put first on PYTHONPATH, and models
# are converted into a separate cache (files written by transformers 5 do not load in 4.57).
# Default: the core suite (policy, rollouts, GRPO, rewards, the TensorRT-LLM engine on its fake);
# pass pytest arguments to choose others, e.g. `bash scripts/test_transformers_4_57.sh tests/test_eval_e2e.py`.
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET=${TF457_DIR:-.tf457}
PY=.venv/bin/python
if [ ! -f "${TARGET}/transformers/__init__.py" ]; then
  "${PY}" -m pip install --quiet --no-deps --target "${TARGET}" \
    "transformers==4.57.1" "tokenizers>=0.22.0,<=0.23.0" "huggingface-hub>=0.34.0,<1.0"
fi
export PYTHONPATH="${PWD}/${TARGET}${PYTHONPATH:+:${PYTHONPATH}}"
export MEDSSR_CACHE="${MEDSSR_CACHE_TF457:-${HOME}/.cache/medssr_nemo_tf457}"
"${PY}" -c 'import transformers; assert transformers.__version__ == "4.57.1", transformers.__version__'
if [ "$#" -eq 0 ]; then
  set -- tests/test_policy_hf.py tests/test_rollout_inprocess.py tests/test_grpo_trainer.py \
    tests/test_rewards.py tests/test_answers.py tests/test_trtllm_engine.py tests/test_trtllm_fused_names.py \
    tests/test_trtllm_contract.py
fi
exec "${PY}" -m pytest -q "$@"
