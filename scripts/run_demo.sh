#!/usr/bin/env bash
# The main job on the embedded default: synthetic CT + uncertainty from the bundled real T2 MRI.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure_env.sh
exec .venv/bin/mritoct demo "$@"
