#!/usr/bin/env bash
# Create .venv (if needed) and install gluekit with notebook and test extras.
# torch is pinned and installed FIRST: torch==2.13.0 resolves to the CPU build; an unpinned torch
# pulled in by another package would fetch a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
. .venv/bin/activate
stamp=.venv/.gluekit-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  python -m pip install -q --upgrade pip
  python -m pip install -q "torch==${GLUEKIT_TORCH:-2.13.0}"
  python -m pip install -q -e ".[notebooks,test]"
  touch "$stamp"
fi
python -c "import gluekit.tiny as t; t.tiny_model_dir()"  # build the tiny GLM once (seconds)
