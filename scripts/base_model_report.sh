#!/usr/bin/env bash
# The figures the README reports for a shipped base model (whole test split).
#   bash scripts/base_model_report.sh                                   # models/countdown-base
#   bash scripts/base_model_report.sh models/tiny-code-base tiny_code "24 32"
set -euo pipefail
model="${1:-models/countdown-base}"
task="${2:-countdown}"
lengths="${3:-16 32}"
trafl="${TRAFL:-.venv/bin/trafl}"
for length in $lengths; do
  echo "== greedy, gen_length=$length"
  "$trafl" sample model="$model" task="$task" sampler.gen_length="$length" sampler.steps="$length" \
    sampler.temperature=0 show=0
  echo "== 16 samples at temperature 1, gen_length=$length"
  "$trafl" sample model="$model" task="$task" sampler.gen_length="$length" sampler.steps="$length" \
    sampler.temperature=1.0 num_samples=16 show=0
done
