#!/usr/bin/env bash
# Make the 2000-step b = 4 runs of docs/TARGET.md section 7 again, on this machine, and evaluate
# their checkpoints as the study did: the starting points of the third diagnosis's arms
# (`scripts/target_study.py --extend runs/long2000`, docs/TARGET.md section 11). Their weights
# are not in the repository; results/target/long2000.tgz holds their configs and logs.
#
#   bash scripts/remake_long2000.sh                      # train seeds 0 1 2, then evaluate
#   SEEDS=1 EVALUATE=0 bash scripts/remake_long2000.sh   # train one seed only (two at once on
#                                                        # 2 cores), evaluate later
#
# About 2.1 h of training per seed on one core of an Intel Xeon (AVX-512), then 10 evaluations
# per seed of 48 problems x 128 samples (about 4 min each: 2 h for all 30). A run stopped by a
# signal resumes where it stopped; one killed before its first checkpoint (step 200) is refused:
# delete its folder. The evaluations wait for all three runs (none is trained by the study).
# On the kind of CPU the pack was trained on, `scripts/rerun.py` without --anew would check
# every logged number bit for bit; elsewhere (as here: --anew) the runs are new runs with the
# same settings, so their own evaluations are made (section 7's curve, replicated) instead of
# unpacking the pack's. The base's evaluation is the pack's: the same model and settings.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
PACK=results/target/long2000.tgz
SEEDS=${SEEDS:-0 1 2}
OUT=${OUT:-runs/long2000}
EVALUATE=${EVALUATE:-1}
export HF_HUB_OFFLINE=1 OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}

for seed in $SEEDS; do
  run=$OUT/trafl-b4-s$seed
  [ -d "$run/model" ] || "$PYTHON" scripts/rerun.py "$PACK" "trafl-b4-s$seed" --anew --out "$run"
done
if [ "$EVALUATE" = 1 ]; then
  for seed in 0 1 2; do
    [ -d "$OUT/trafl-b4-s$seed/model" ] || {
      echo "$OUT/trafl-b4-s$seed is not made yet: the evaluations wait for all three runs"
      exit 0
    }
  done
  [ -d "$OUT/base" ] || tar -xzf "$PACK" -C "$OUT" base
  # the study's own evaluations of every scheduled checkpoint of the three runs: the flags
  # that made long2000, less --extend and the held-out runs (finished runs are not trained)
  "$PYTHON" scripts/target_study.py --out "$OUT" --workers 1 --seeds 3 --betas 4 --baselines \
    --mu-betas --path-betas --lr-betas --explore-betas --heldout --trafl-steps 2000 --points 10
fi
