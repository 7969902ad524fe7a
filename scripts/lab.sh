#!/usr/bin/env bash
# Set up everything, then open JupyterLab on the notebooks (tiny model, CPU, no network needed).
# JupyterLab starts without its "Would you like to get notified about official Jupyter news?" pop-up:
# scripts/lab-settings/overrides.json turns news and update checks off by default (a learner can still
# turn them on in Settings); tests/test_browser.py starts its server with the same flags.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
export TOKENIZERS_PARALLELISM=false
no_news=(--LabApp.app_settings_dir="$PWD/scripts/lab-settings" --LabApp.news_url=None
         --LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate)
# defaults only where the caller did not give them (jupyter refuses a repeated --port or --ip)
defaults=(--notebook-dir=notebooks "${no_news[@]}")
[[ " $* " == *" --ip"* ]] || defaults+=(--ip="${GLUEKIT_LAB_IP:-127.0.0.1}")
[[ " $* " == *" --port"* ]] || defaults+=(--port="${GLUEKIT_LAB_PORT:-8888}")
# containers often run as root, which JupyterLab refuses without this flag
[[ $EUID -ne 0 || " $* " == *" --allow-root"* ]] || defaults+=(--allow-root)
exec jupyter lab "${defaults[@]}" "$@"
