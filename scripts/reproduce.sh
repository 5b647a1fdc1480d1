#!/usr/bin/env bash
# Regenerates every number in docs/REPRODUCTION.md (issues 6 and 12): for each seed, post-train
# TraFL, TraFL with exact paths and the four reward-maximising baselines from the shipped
# Countdown base (TraFL 300 steps of one update, the others 100 steps reusing each batch),
# evaluate them and the base at L = 16, 24, 32 with 64 samples per problem, then aggregate the
# seeds into the report.
#
#   bash scripts/reproduce.sh                 # 2.8-4.4 h per seed on one CPU core
#                                             # (training and evaluation)
#   SEEDS="0 1" bash scripts/reproduce.sh     # a subset; finished stages are reused
#   PARALLEL=1 bash scripts/reproduce.sh      # every seed at once (a GPU; on 2 cores,
#                                             # SEEDS="0 1" then SEEDS=2)
#   PACK=results/reproduction/repro300.tgz ... # also pack the results (scripts/packs.py)
#   FROM=results/reproduction/repro300.tgz ... # first add a pack's files that OUT lacks:
#                                             # continue on another machine, or rewrite the
#                                             # report from the committed pack (no training)
#   SEEDS=0 STEPS=30 REUSE_STEPS=30 OUT=runs/repro REPORT=runs/repro/REPRODUCTION.md \
#     bash scripts/reproduce.sh               # seed 0 of the first, 30-step reproduction
#                                             # (docs/reproduction30/, scripts/ablation.py)
#
# Each seed is one `trafl demo` run (OUT/seedS/report.md); interrupted runs resume, and
# a method whose evaluations are there (from FROM's pack too) is not trained again.
set -euo pipefail
cd "$(dirname "$0")/.."
TRAFL=${TRAFL:-.venv/bin/trafl}
PYTHON=${PYTHON:-.venv/bin/python}
SEEDS=${SEEDS:-0 1 2}
METHODS=${METHODS:-[trafl,trafl_path,diffu_grpo,wd1,spg,espo]}
PROBLEMS=${PROBLEMS:-64}
SAMPLES=${SAMPLES:-64}
OUT=${OUT:-runs/repro300}
STEPS=${STEPS:-300}  # RL steps of a method using each batch once (TraFL)
REUSE_STEPS=${REUSE_STEPS:-100}  # ... and of one reusing it (d1, wd1: mu = 12; SPG, ESPO)

if [ -n "${FROM:-}" ]; then "$PYTHON" scripts/packs.py --unpack --missing "$FROM" "$OUT"; fi
one_seed() {
  # the setting of docs/REPRODUCTION.md (held-out problems: no fixed pool)
  "$TRAFL" demo "methods=$METHODS" "seed=$1" "eval_problems=$PROBLEMS" \
    "eval_samples=$SAMPLES" "out_dir=$OUT/seed$1" pool=0 "steps=$STEPS" \
    "reuse_steps=$REUSE_STEPS" points=1 \
    rollout_temperature=0.9 "gen_lengths=[16,24,32]"
}
if [ -n "${PARALLEL:-}" ]; then  # every seed at once (a GPU): logs in $OUT/seedS.log
  mkdir -p "$OUT"
  pids=()
  for seed in $SEEDS; do one_seed "$seed" > "$OUT/seed$seed.log" 2>&1 & pids+=($!); done
  failed=0
  for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
  [ "$failed" = 0 ] || { echo "a seed failed: see $OUT/seed*.log" >&2; exit 1; }
else
  for seed in $SEEDS; do one_seed "$seed"; done
fi
if [ -n "${PACK:-}" ]; then "$PYTHON" scripts/packs.py "$OUT" "$PACK"; fi
"$PYTHON" scripts/reproduction_report.py "${PACK:-$OUT}" --out "${REPORT:-docs/REPRODUCTION.md}"
