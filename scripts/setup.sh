#!/usr/bin/env bash
# Create .venv (if needed) and install gluekit with its notebook and test extras at the versions in
# requirements/lock.txt, the versions CI tests (`bash scripts/lock.sh` moves them forward).
#
# torch is installed FIRST, at requirements/torch.txt's version, in the build GLUEKIT_TORCH names:
#   cpu (default)        the CPU build: a 192 MB wheel on Linux (what the tiny-model course needs)
#   cu126, cu128, ...    the build for that CUDA version, from https://download.pytorch.org/whl/<name>
#   pypi                 PyPI's own build: on Linux the CUDA one, about 2.7 GB of wheels
# Only the torch step uses PyTorch's index; everything else comes from PyPI. Where pip's own
# configuration already provides the CPU wheel (a local file, as on this project's CI machines), no
# index is added. An unpinned torch pulled in by another package would be PyPI's CUDA build.
# The install is redone when pyproject.toml, the lock, the torch pin or GLUEKIT_TORCH changes.
# `bash scripts/setup.sh --dry-run` prints the pip commands and changes nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
lock=requirements/lock.txt
pin=$(grep -E '^torch==' requirements/torch.txt | tr -d '[:space:]')
build=${GLUEKIT_TORCH:-cpu}
dry=0
[ "${1:-}" = "--dry-run" ] && dry=1
case "$build" in
  cpu|pypi|cu[0-9]*|rocm[0-9]*) ;;
  *)
    echo "setup.sh: GLUEKIT_TORCH=$build is not a torch build. Use cpu (the default), a CUDA version such as" \
         "cu126 or cu128 (https://pytorch.org/get-started lists the ones of torch ${pin#torch==}), or pypi;" \
         "the torch version itself is set in requirements/torch.txt." >&2
    exit 1 ;;
esac

# the torch step's index and requirement for $build (pip's configuration asked with the venv's python)
torch_step() {
  index=()
  case "$build" in
    cpu)
      if [ "$(uname -s)" = Darwin ]; then
        spec=$pin  # PyPI's macOS wheel is the CPU (and Apple GPU) build
      else
        spec="$pin+cpu"
        # the CPU wheel already visible to pip (find-links, a local mirror): use it, ask no other index
        if ! "$1" -m pip install -q --dry-run --no-deps "$spec" >/dev/null 2>&1; then
          index=(--extra-index-url https://download.pytorch.org/whl/cpu)
        fi
      fi ;;
    cu[0-9]*|rocm[0-9]*)
      spec="$pin+$build"
      index=(--extra-index-url "https://download.pytorch.org/whl/$build") ;;
    pypi)
      spec=$pin ;;
  esac
  torch_cmd=(python -m pip install -q ${index[@]+"${index[@]}"} -c "$lock" "$spec")
  extras_cmd=(python -m pip install -q -c "$lock" -e ".[notebooks,test]")
}

key=$(cat pyproject.toml "$lock" requirements/torch.txt | "$PY" -c \
      "import hashlib, sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest()[:16])")-$build
stamp=.venv/.gluekit-installed
if [ "$dry" = 1 ]; then
  torch_step "$([ -x .venv/bin/python ] && echo .venv/bin/python || echo "$PY")"
  state=$([ -f "$stamp" ] && [ "$(cat "$stamp")" = "$key" ] && echo "up to date" || echo "would install")
  echo "GLUEKIT_TORCH=$build ($state, stamp $key)"
  echo "${torch_cmd[*]}"
  echo "${extras_cmd[*]}"
  exit 0
fi

if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
. .venv/bin/activate
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$key" ]; then
  python -m pip install -q --upgrade pip
  torch_step python
  "${torch_cmd[@]}"
  "${extras_cmd[@]}"
  echo "$key" > "$stamp"
fi
python -c "import gluekit.tiny as t; t.tiny_model_dir()"  # build the tiny GLM once (seconds)
