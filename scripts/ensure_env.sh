#!/usr/bin/env bash
# Create or reuse the local virtual environment .venv and install the project into it.
# Usage: source scripts/ensure_env.sh [extra]   (extra: "test" adds pytest, slicer-core, PySide6)
# A CPU build of PyTorch is enough; set TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
# on machines where pip would otherwise fetch the much larger CUDA build.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
EXTRA="${1:-}"
if [ ! -x "$ROOT/.venv/bin/python" ]; then
  echo "creating virtual environment $ROOT/.venv" >&2
  "$PYTHON" -m venv "$ROOT/.venv"
fi
STAMP="$ROOT/.venv/.installed-${EXTRA:-base}"
WANT="$(sha256sum "$ROOT/pyproject.toml" | cut -d' ' -f1)"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ]; then
  echo "installing the project into .venv (first run takes a few minutes)" >&2
  "$ROOT/.venv/bin/python" -m pip install --quiet --upgrade pip >&2
  TORCH_ARGS=()
  if [ -n "${TORCH_INDEX_URL:-}" ]; then TORCH_ARGS=(--extra-index-url "$TORCH_INDEX_URL"); fi
  "$ROOT/.venv/bin/python" -m pip install --quiet "${TORCH_ARGS[@]}" -e "$ROOT${EXTRA:+[$EXTRA]}" >&2
  echo "$WANT" > "$STAMP"
fi
