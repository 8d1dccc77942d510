#!/usr/bin/env bash
# One set-up for a fresh machine: Debian packages (espeak-ng, g++), the CPU torch, the package.
set -euo pipefail
cd "$(dirname "$0")/.."
# espeak-ng: the embedded world's TTS; g++: torch.compile's CPU backend (the compiled rollout decoder).
missing=""
command -v espeak-ng >/dev/null 2>&1 || missing="$missing espeak-ng"
command -v g++ >/dev/null 2>&1 || missing="$missing g++"
if [ -n "$missing" ]; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
fi
python3 -m pip install -q --disable-pip-version-check torch==2.13.0
python3 -m pip install -q --disable-pip-version-check -e ".[dev]"
