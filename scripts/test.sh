#!/usr/bin/env bash
# Set up everything, then run the whole test suite: unit and end-to-end tests, then every
# notebook under nbval (stored outputs compared with a fresh run).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/browser-deps.sh  # chromium + CJK font + playwright for tests/test_browser.py (never fails)
. .venv/bin/activate
export TQDM_DISABLE=1 TOKENIZERS_PARALLELISM=false
exec python -m pytest tests/ notebooks/ --nbval --nbval-current-env \
  --nbval-sanitize-with notebooks/sanitize.cfg -p no:cacheprovider "$@"
