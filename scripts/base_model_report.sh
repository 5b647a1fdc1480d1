#!/usr/bin/env bash
# The figures the README reports for the shipped base model (whole 500-problem test split).
#   bash scripts/base_model_report.sh [MODEL]
set -euo pipefail
model="${1:-models/countdown-base}"
trafl="${TRAFL:-.venv/bin/trafl}"
for length in 16 32; do
  echo "== greedy, gen_length=$length"
  "$trafl" sample model="$model" sampler.gen_length=$length sampler.steps=$length sampler.temperature=0 show=0
  echo "== 16 samples at temperature 1, gen_length=$length"
  "$trafl" sample model="$model" sampler.gen_length=$length sampler.steps=$length sampler.temperature=1.0 \
    num_samples=16 show=0
done
