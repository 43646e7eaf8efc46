#!/usr/bin/env bash
# The live bench's peer: wyoming-faster-whisper in its own virtualenv (bench only, never the product's).
# usage: bash tests/bench/setup_peer.sh [VENV_DIR]   (default: .venv-bench-peer at the repository root)
# Idempotent: does nothing when the venv already imports wyoming_faster_whisper.
# No model is downloaded here: the bench points the peer at the CTranslate2 weights voxbus builds from.
set -euo pipefail

PEER_VERSION="3.8.1"   # the version issue 19 measured; pip's own pick when that one is unavailable
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="${1:-$REPO/.venv-bench-peer}"
PYTHON="${PYTHON:-python3.11}"

if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "import wyoming_faster_whisper" 2>/dev/null; then
    exit 0
fi
command -v "$PYTHON" >/dev/null || { echo "setup_peer: $PYTHON not found (set PYTHON=...)" >&2; exit 2; }
"$PYTHON" -m venv "$VENV"
printf '*\n' > "$VENV/.gitignore"   # keeps the venv out of git without touching the project's .gitignore
"$VENV/bin/pip" install -q --upgrade pip 2>/dev/null || true
if ! "$VENV/bin/pip" install -q "wyoming-faster-whisper==$PEER_VERSION"; then
    echo "setup_peer: wyoming-faster-whisper==$PEER_VERSION unavailable; installing pip's choice" >&2
    "$VENV/bin/pip" install -q wyoming-faster-whisper
fi
"$VENV/bin/python" -c "import importlib.metadata as m; print('setup_peer: wyoming-faster-whisper',
    m.version('wyoming-faster-whisper'), 'faster-whisper', m.version('faster-whisper'),
    'ctranslate2', m.version('ctranslate2'))"
