#!/usr/bin/env bash
# Set up everything, then run the whole test suite: unit and end-to-end tests, then every
# notebook under nbval (stored outputs compared with a fresh run); then the 4-bit tests with
# bitsandbytes importable.
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
# bitsandbytes (requirements/qlora.txt) goes into .venv/qlora, importable only by the second run below:
# installed in the venv, `import peft` would import it in every test process and notebook kernel.
qlora=.venv/qlora
if ! cmp -s requirements/qlora.txt "$qlora/.installed" 2>/dev/null; then
  rm -rf "$qlora"
  python -m pip install -q --no-deps --target "$qlora" -r requirements/qlora.txt && cp requirements/qlora.txt "$qlora/.installed"
fi
status=0
python -m pytest tests/ notebooks/ --nbval --nbval-current-env \
  --nbval-sanitize-with notebooks/sanitize.cfg -p no:cacheprovider "${extra[@]}" "$@" || status=$?
# the 4-bit tests (skipped above, bitsandbytes not importable there): 4-bit training, resume, merge.
# One thread: bitsandbytes' CPU kernels then sum in one order, and a resumed run equals an uninterrupted one.
OMP_NUM_THREADS=1 PYTHONPATH="$PWD/$qlora${PYTHONPATH:+:$PYTHONPATH}" \
  python -m pytest tests/test_quantization.py -p no:cacheprovider "$@" || status=$?
exit "$status"
