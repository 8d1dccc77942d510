#!/usr/bin/env bash
# One set-up for a fresh machine: Debian/Ubuntu packages (espeak-ng, g++, chromium, python3-venv when missing), then a
# project virtual environment .venv with the CPU torch and the package (editable, with the test and plot extras).
#
# Why a venv of our own: a stock Debian 12/13 or Ubuntu 24.04 system Python refuses `pip install` (PEP 668,
# externally-managed-environment). .venv is made from the `python3` first on PATH, so inside an active venv or conda
# environment it is built on that environment's interpreter; the active environment itself is never modified.
# The README's commands call .venv/bin/python explicitly, so they read the same whichever environment is active.
# Re-running reuses a working .venv (it only installs what is missing); WAVALIGN_VENV=path puts it elsewhere.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${WAVALIGN_VENV:-.venv}"

apt_install() {  # apt_install PKG...: install Debian packages, with sudo when not root
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "setup: no apt-get here; install these with your system's package manager, then re-run:$*" >&2
    exit 1
  fi
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}

command -v python3 >/dev/null 2>&1 || { echo "setup: no python3 on PATH (Python 3.10 or later is needed)" >&2; exit 1; }
if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then
  echo "setup: $(command -v python3) is Python $(python3 -c 'import platform; print(platform.python_version())'); 3.10 or later is needed" >&2
  exit 1
fi

# espeak-ng: the embedded world's TTS; g++: torch.compile's CPU backend (the compiled rollout decoder);
# chromium + chromium-driver: the headless browser that tests the listening-test page (tests/listening/test_page.py).
missing=""
command -v espeak-ng >/dev/null 2>&1 || missing="$missing espeak-ng"
command -v g++ >/dev/null 2>&1 || missing="$missing g++"
command -v chromium >/dev/null 2>&1 || missing="$missing chromium"
command -v chromedriver >/dev/null 2>&1 || missing="$missing chromium-driver"
if [ ! -x "$VENV/bin/python" ] && ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
  # Debian and Ubuntu ship venv's pip bootstrap (ensurepip) in a package of its own.
  ver="$(python3 -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
  missing="$missing python3-venv python$ver-venv"
fi
if [ -n "$missing" ]; then
  echo "setup: installing Debian packages:$missing" >&2
  apt_install $missing
fi

if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -m pip --version >/dev/null 2>&1; then
  echo "setup: reusing $VENV ($("$VENV/bin/python" --version))" >&2
else
  echo "setup: creating $VENV with $(command -v python3) ($(python3 --version))" >&2
  python3 -m venv --clear "$VENV"
fi
PY="$VENV/bin/python"
"$PY" -m pip install -q --disable-pip-version-check torch==2.13.0
"$PY" -m pip install -q --disable-pip-version-check -e ".[dev,plot]"  # plot: the ablation report's figure, which tests check
echo "setup: done; run the package with $PY (README: the two commands)" >&2
