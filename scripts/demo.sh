#!/usr/bin/env bash
# Set up .venv and run the main job on the embedded default (no database or broker needed).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
export HF_HUB_OFFLINE=1
exec .venv/bin/clipgate demo "$@"
