#!/usr/bin/env bash
# Mutation check of the critical paths (not part of the default test run): each curated
# single-line mutation in scripts/mutation_check.py is applied to a temporary copy of the tree,
# its tests run there, and a table says which were caught; exits 1 if any survived, 2 if a
# mutation no longer applies. Arguments pass through (--only NAME, --list, --dry-run).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
[ -x "$PY" ] || PY=python3
exec nice "$PY" scripts/mutation_check.py "$@"
