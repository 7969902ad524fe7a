#!/usr/bin/env bash
# Set up everything, then run the whole test suite: unit and end-to-end tests, then every
# notebook under nbval (stored outputs compared with a fresh run).
# tests/test_browser.py opens notebooks in JupyterLab in headless Chromium (installs Debian's chromium
# and a CJK font first; skipped with the reason where that is impossible). GLUEKIT_BROWSER=0 leaves it out.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
extra=()
if [ "${GLUEKIT_BROWSER:-1}" = 0 ]; then
  extra=(--ignore=tests/test_browser.py)
else
  bash scripts/browser-deps.sh  # chromium + CJK font + playwright (never fails; the test skips with the reason)
fi
. .venv/bin/activate
export TQDM_DISABLE=1 TOKENIZERS_PARALLELISM=false
exec python -m pytest tests/ notebooks/ --nbval --nbval-current-env \
  --nbval-sanitize-with notebooks/sanitize.cfg -p no:cacheprovider "${extra[@]}" "$@"
