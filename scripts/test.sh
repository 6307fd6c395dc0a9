#!/usr/bin/env bash
# Install (scripts/install.sh) and run the default test suite (no slow or GPU tests).
# Extra pytest arguments pass through, e.g. `bash scripts/test.sh -m slow`.
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS=${EXTRAS:-megatron} bash scripts/install.sh   # the megatron extra: its parity tests are in the suite
# the data the tests read: verified where it is (../shared/data or $MEDSSR_DATA), else fetched (docs/data.md)
.venv/bin/medssr data download --no-progress
exec .venv/bin/python -m pytest "$@"
