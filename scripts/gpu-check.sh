#!/usr/bin/env bash
# The one-shot GPU check (issue 10): GLM-4-9B-shaped models with random weights, built in bf16 on the
# GPU (glm-4-9b-chat-hf's GlmForCausalLM and GLM-4-9B-0414's Glm4ForCausalLM), trained with lora.yaml's
# settings (checkpointing and packing off/on), evaluated and chatted with on the GPU; peak memory,
# tokens/s and MFU next to `gluekit plan`'s estimate. One GPU, under 8 minutes, no network.
# Writes benchmarks/results/gpu.json and the GPU rows of BENCHMARKS.md (benchmarks/bench_gpu.py).
#   bash scripts/gpu-check.sh           on a machine with a CUDA GPU
#   bash scripts/gpu-check.sh --quick   its CPU mode: tiny shapes, same code path, nothing written
# Python: $PYTHON, else .venv/bin/python, else python3; it needs a CUDA build of torch (scripts/setup.sh
# installs the CPU build: on a GPU machine set GLUEKIT_TORCH or use your own environment).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-}
if [ -z "$PY" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
export HF_HUB_OFFLINE=1 TQDM_DISABLE=1 TOKENIZERS_PARALLELISM=false
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
exec "$PY" -m benchmarks gpu "$@"
