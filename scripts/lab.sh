#!/usr/bin/env bash
# Set up everything, then open JupyterLab on the notebooks (tiny model, CPU, no network needed).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
export TOKENIZERS_PARALLELISM=false
# defaults only where the caller did not give them (jupyter refuses a repeated --port or --ip)
defaults=(--notebook-dir=notebooks)
[[ " $* " == *" --ip"* ]] || defaults+=(--ip="${GLUEKIT_LAB_IP:-127.0.0.1}")
[[ " $* " == *" --port"* ]] || defaults+=(--port="${GLUEKIT_LAB_PORT:-8888}")
# containers often run as root, which JupyterLab refuses without this flag
[[ $EUID -ne 0 || " $* " == *" --allow-root"* ]] || defaults+=(--allow-root)
exec jupyter lab "${defaults[@]}" "$@"
