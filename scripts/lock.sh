#!/usr/bin/env bash
# Move requirements/lock.txt to the newest releases pyproject.toml allows, reinstall from it and run the
# whole suite: one command to move forward. The lock is what scripts/setup.sh, binder/ and CI install.
#
#   bash scripts/lock.sh               upgrade every pin (torch stays at requirements/torch.txt), reinstall, test
#   bash scripts/lock.sh --keep        keep the current pins; only add or fix what pyproject.toml now asks for
#   bash scripts/lock.sh -P peft       upgrade one package (any other option goes to `uv pip compile`)
#   bash scripts/lock.sh --no-test     write the lock only
#
# To move torch, edit requirements/torch.txt (one line, torch==X.Y.Z, no local label such as +cpu) first.
# The lock is written by uv (`uv pip compile --universal`: one file for Python 3.10+ on Linux, macOS and
# Windows, with markers), from PyPI only: it never carries this machine's pip configuration (local
# indexes, find-links), hashes (they would reject the CPU wheel of torch) or a +cpu label. The CUDA-only
# packages PyPI's torch depends on (nvidia-*, cuda-*, triton) are left out: a constraints file never
# installs anything, the CPU build needs none of them, and a CUDA build from PyPI or PyTorch's index
# brings the ones it was built with. uv is taken from PATH, else installed into a temporary venv.
set -euo pipefail
cd "$(dirname "$0")/.."
UV_VERSION=0.13.9
lock=requirements/lock.txt
# the extras scripts/setup.sh installs: keep the two lists equal (tests/test_lock.py checks it)
extras=(--extra notebooks --extra test)

upgrade=(--upgrade)
run_tests=1
passthrough=()
for arg in "$@"; do
  case "$arg" in
    --keep) upgrade=() ;;
    --no-test) run_tests=0 ;;
    -P|--upgrade-package|--upgrade-package=*) upgrade=(); passthrough+=("$arg") ;;  # that package only
    *) passthrough+=("$arg") ;;
  esac
done

uv=$(command -v uv || true)
if [ -z "$uv" ]; then
  tools=$(mktemp -d)
  trap 'rm -rf "$tools"' EXIT
  "${PYTHON:-python3}" -m venv "$tools/venv"
  "$tools/venv/bin/python" -m pip install -q "uv==$UV_VERSION"
  uv="$tools/venv/bin/uv"
fi

compile() {
  "$uv" pip compile pyproject.toml "${extras[@]}" -c requirements/torch.txt --universal \
    --custom-compile-command "bash scripts/lock.sh" -o "$lock" --quiet "$@"
}
# 1) resolve (the existing lock's pins are kept unless upgraded)
compile ${upgrade[@]+"${upgrade[@]}"} ${passthrough[@]+"${passthrough[@]}"}
# 2) the same resolution without the CUDA-only packages of PyPI's torch
cuda=$(grep -oE '^(nvidia-[A-Za-z0-9_.-]+|cuda-[A-Za-z0-9_.-]+|triton)==' "$lock" | sed 's/==$//' | sort -u)
no_emit=()
for name in $cuda; do no_emit+=(--no-emit-package "$name"); done
compile ${no_emit[@]+"${no_emit[@]}"}
echo "wrote $lock: $(grep -cE '^[A-Za-z0-9]' "$lock") pins (left out, CUDA only: $(echo $cuda | wc -w) packages)"
git --no-pager diff --stat -- "$lock" 2>/dev/null || true

if [ "$run_tests" = 1 ]; then
  bash scripts/setup.sh  # reinstalls: the stamp follows the lock's content
  bash scripts/test.sh -q
fi
