#!/usr/bin/env bash
# The issue-5 and issue-17 measurements on one CUDA GPU, in under 10 minutes (the parts' time
# limits sum to 580 s), for whoever has one.
#
#   bash benchmarks/gpu_check.sh            # results in benchmarks/gpu/ (or $OUT if set)
#   PYTHON=python3 PYTHONPATH=$PWD/src bash benchmarks/gpu_check.sh   # the machine's own torch, no .venv
#
# Same scripts as on the CPU (benchmarks/RESULTS.md), on the shipped Countdown base:
#   1. sampler modes (plain, parallel, prefix/dual cache): tokens/s ratios and accuracy;
#   2. time and peak CUDA memory per RL step of every objective;
#   3. growth with generation length and batch size (log-log plot);
#   4. per-sequence lengths interleaved in one batch against one batch per length;
#   5. Fast-dLLM's caches and parallel decoding at LLaDA-8B's real shape (random weights, bf16,
#      d1's prompt 200 / 256 generated / blocks of 32 / 128 steps), against the arithmetic limit,
#      with a profile of one full and one dual-window forward (benchmarks/llada_cache.py).
# Part 2 also reports the split of each step (sampling, reward, scoring forwards, backward).
# Each part has its own time limit so one slow part cannot eat the others' time. The first run
# (one H200, 2026-12-04) cut scaling at 90 s after 6 of its 7 points and mixed_lengths at 30 s
# before any figure; they now have 140 s and 100 s (benchmarks/RESULTS.md, "On a GPU").
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
DEST=${OUT:-benchmarks/gpu}
mkdir -p "$DEST"
export HF_HUB_OFFLINE=1
{
  date -u
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  "$PYTHON" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
} | tee "$DEST/machine.txt"

run() {  # run LIMIT NAME CMD...: one part, its log kept whatever happens
  local limit=$1 name=$2; shift 2
  echo "== $name (limit ${limit}s)"
  timeout "$limit" "$@" 2>&1 | tee "$DEST/$name.log"
  echo "== $name exit ${PIPESTATUS[0]}"
}

run 80 sampler_modes "$PYTHON" benchmarks/sampler_modes.py --device cuda --problems 256 \
  --samples 32 --out "$DEST/sampler_modes.json"
run 150 llada_cache "$PYTHON" benchmarks/llada_cache.py --shape llada-8b --device cuda \
  --dtype bfloat16 --batch 4 --repeats 2 --modes plain prefix dual dual+parallel \
  --out "$DEST/llada_cache.json"
run 110 step_time "$PYTHON" benchmarks/step_time.py --device cuda --steps 2 \
  --out "$DEST/step_time.json"
run 140 scaling "$PYTHON" benchmarks/scaling.py --device cuda --lengths 32 64 128 256 \
  --batches 64 256 1024 --fixed-batch 256 --fixed-length 64 --out "$DEST/scaling"
run 100 mixed_lengths "$PYTHON" benchmarks/mixed_lengths.py --device cuda --problems 256 \
  --samples 4 --lengths 64 128 256 --batch-size 512 --out "$DEST/mixed_lengths.json"
ls -l "$DEST"
