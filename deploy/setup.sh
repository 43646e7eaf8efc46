#!/usr/bin/env bash
# Idempotent setup for a fresh Debian / Raspberry Pi OS machine: system packages,
# the venv, voxbus itself, and the default model. Fast when everything is done.
#   deploy/setup.sh            runtime (what `make run` needs)
#   deploy/setup.sh --test     runtime + what the tests need (browser, espeak-ng, reference ASR)
set -euo pipefail

cd "$(dirname "$0")/.."
WITH_TESTS=0
[ "${1:-}" = "--test" ] && WITH_TESTS=1
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}

say() { printf 'setup: %s\n' "$*"; }

# 64-bit only: onnxruntime publishes no wheels for 32-bit ARM (armhf), and a Pi 4 with the
# 32-bit Raspberry Pi OS (its kernel may still say aarch64) would fail deep inside pip.
os_arch=$(dpkg --print-architecture 2>/dev/null || echo unknown)
case "$os_arch" in
  armhf|armel|i386)
    echo "setup: error: voxbus needs a 64-bit OS (on a Raspberry Pi: Raspberry Pi OS 64-bit, arm64); this one is $os_arch, for which onnxruntime has no wheels" >&2
    exit 2 ;;
esac

# --- system packages ---------------------------------------------------------
# python3-venv: Debian's python3 cannot make a venv without it; build-essential and
# python3-dev: pyalsaaudio and webrtcvad compile where no wheel fits (e.g. on the Pi).
runtime_debs=(python3-venv python3-dev build-essential libasound2-dev libsndfile1 ffmpeg)
test_debs=(espeak-ng sox chromium chromium-driver alsa-utils libegl1 libgl1 libxkbcommon0 libfontconfig1 libdbus-1-3)  # Qt offscreen
want=("${runtime_debs[@]}")
[ "$WITH_TESTS" = 1 ] && want+=("${test_debs[@]}")
missing=()
for pkg in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- venv and Python packages ------------------------------------------------
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "setup: error: voxbus needs Python >= 3.11 ($PYTHON is $("$PYTHON" --version 2>&1))" >&2
  exit 2
fi
[ -x "$VENV/bin/python" ] || { say "creating $VENV"; "$PYTHON" -m venv "$VENV"; }
extras="build,models"
[ "$WITH_TESTS" = 1 ] && extras="$extras,test,desktop"
stamp="$VENV/.voxbus-installed-$extras"
digest=$(sha256sum pyproject.toml | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" != "$digest" ]; then
  say "installing voxbus[$extras] into $VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check --upgrade pip wheel
  "$VENV/bin/pip" install -q --disable-pip-version-check -e ".[$extras]"
  # The speaker model's weights (speaker/build): only its pretrained.pt is used, and its declared
  # dependencies (torch, librosa) would pull several GB, hence --no-deps.
  "$VENV/bin/pip" install -q --disable-pip-version-check --no-deps "resemblyzer==0.1.4"
  echo "$digest" > "$stamp"
fi

# --- default model -----------------------------------------------------------
model=$("$VENV/bin/python" deploy/ensure_model.py)
say "ready (default model: $model)"
