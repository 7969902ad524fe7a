#!/usr/bin/env bash
# Set up everything, then open JupyterLab on the notebooks (tiny model, CPU, no network needed).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
export TOKENIZERS_PARALLELISM=false
exec jupyter lab --notebook-dir=notebooks --ip="${GLUEKIT_LAB_IP:-127.0.0.1}" --port="${GLUEKIT_LAB_PORT:-8888}" "$@"
