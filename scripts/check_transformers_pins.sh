#!/usr/bin/env bash
# The Kimi-Audio and VITA-Audio policy tests under the transformers that VITA-Audio pins (4.48.3, the vita-audio
# extra), next to CI's 5.x: VITA-Audio's remote code needs 4.48.3, and a run that uses both models in one environment
# (or a Kimi run in a VITA environment) must work there too.
#
# Builds a throwaway virtual environment (default /tmp/wavalign-pins-venv, WAVALIGN_PINS_VENV=path elsewhere; never
# tracked), installs torch==2.13.0 (CI's CPU build), then this package with the vita-audio and dev extras, prints the
# versions and runs the Kimi, VITA and contract policy tests from this checkout's sources. Needs the package index
# (PyPI) for transformers 4.48.3 and its dependencies. Re-running reuses the environment; WAVALIGN_PINS_FRESH=1
# rebuilds it. Extra arguments go to pytest (e.g. -x, -k kimi). Exit status: pytest's.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${WAVALIGN_PINS_VENV:-/tmp/wavalign-pins-venv}"
PYTHON="${PYTHON:-python3}"

if [ "${WAVALIGN_PINS_FRESH:-0}" = "1" ]; then rm -rf "$VENV"; fi
if [ ! -x "$VENV/bin/python" ]; then "$PYTHON" -m venv "$VENV"; fi
PIP=("$VENV/bin/python" -m pip install --quiet)
"${PIP[@]}" "torch==2.13.0"
# non-editable (its build leftovers, build/ and *.egg-info, are git-ignored); the tests import src/ via PYTHONPATH
"${PIP[@]}" ".[vita-audio,dev]"

"$VENV/bin/python" - <<'EOF'
import torch
import transformers

print(f"check_transformers_pins: torch {torch.__version__}, transformers {transformers.__version__}")
assert transformers.__version__.startswith("4.48."), "the vita-audio extra should have installed transformers 4.48.x"
EOF

shopt -s nullglob
tests=(tests/policy/test_kimi*.py tests/policy/test_vita*.py tests/policy/test_contract.py)
PYTHONPATH=src exec "$VENV/bin/python" -m pytest -q -p no:cacheprovider "${tests[@]}" "$@"
