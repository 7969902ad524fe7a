#!/usr/bin/env bash
# What tests/test_browser.py needs: Debian's chromium with a CJK font (apt), and playwright in .venv
# (pip; no `playwright install`: the test drives /usr/bin/chromium). Idempotent, and never fails
# its caller: when something cannot be installed it says why (also in tests/artifacts/browser-deps.txt)
# and exits 0, and the browser test is skipped with that reason. On CI (root, Debian) it installs.
set -uo pipefail
cd "$(dirname "$0")/.."
note=tests/artifacts/browser-deps.txt
mkdir -p tests/artifacts
: >"$note"
why() { echo "browser-deps: $*" | tee -a "$note" >&2; }

has_cjk_font() { command -v fc-list >/dev/null && [ -n "$(fc-list :lang=zh 2>/dev/null)" ]; }

if [ ! -x /usr/bin/chromium ] || ! has_cjk_font; then
  if [ "$(id -u)" = 0 ]; then
    SUDO=()
  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    SUDO=(sudo -n)
  else
    SUDO=(none)
  fi
  if ! command -v apt-get >/dev/null; then
    why "cannot install chromium and fonts-noto-cjk: no apt-get on this machine (install them yourself)"
  elif [ "${SUDO[0]:-}" = none ]; then
    why "cannot install chromium and fonts-noto-cjk: not root and no password-less sudo (run: sudo apt-get install -y chromium fonts-noto-cjk)"
  else
    echo "browser-deps: apt-get install chromium fonts-noto-cjk (about 30 s)" >&2
    if ! { "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null &&
           "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-cjk >/dev/null; }; then
      why "apt-get install chromium fonts-noto-cjk failed (see the apt output above)"
    fi
  fi
  [ -x /usr/bin/chromium ] || why "/usr/bin/chromium is still missing"
  has_cjk_font || why "no CJK font after install (fc-list :lang=zh is empty)"
fi

if [ -x .venv/bin/python ] && ! .venv/bin/python -c "import playwright.sync_api" 2>/dev/null; then
  .venv/bin/python -m pip install -q playwright || why "pip install playwright failed"
fi
exit 0
