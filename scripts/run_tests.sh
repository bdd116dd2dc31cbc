#!/usr/bin/env bash
# The whole test suite, in the local virtual environment (created on first use).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure_env.sh test
export QT_QPA_PLATFORM=offscreen
exec .venv/bin/python -m pytest "$@"
