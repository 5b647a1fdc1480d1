#!/usr/bin/env bash
# Make the 2000-step b = 4 runs of docs/TARGET.md section 7 again, on this machine: the starting
# points of the third diagnosis's arms (`scripts/target_study.py --extend runs/long2000`,
# docs/TARGET.md section 11). Their weights are not in the repository; the packs hold their
# configs, logs and evaluations.
#
#   bash scripts/remake_long2000.sh                      # train seeds 0 1 2 (and evaluate)
#   SEEDS=1 bash scripts/remake_long2000.sh              # one seed (two at once on 2 cores)
#   MODE=anew bash scripts/remake_long2000.sh            # skip the probe: new runs
#
# MODE=auto (the default) first trains 3 steps of seed 0 and compares them with PACK
# (results/target/long2000-remade.tgz, made on an Intel Xeon with AVX-512):
# - bit for bit (MODE=checked): `scripts/rerun.py` trains each run checking every logged number
#   of all 2000 steps against the pack (it stops at the first difference), so the runs are the
#   pack's runs and the pack's evaluations are unpacked beside them: no evaluation to make.
# - otherwise (MODE=anew, another kind of CPU): `rerun.py --anew` makes new runs with the same
#   settings, and once all three are made they are evaluated as the study did (10 evaluations
#   per seed of 48 problems x 128 samples, about 4 min each): section 7's curve, replicated (or
#   not) before the arms continue them.
# About 2.1 h of training per seed on one core. A run stopped by a signal resumes where it
# stopped; one killed before its first checkpoint (step 200) is refused: delete its folder.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
PACK=${PACK:-results/target/long2000-remade.tgz}
SEEDS=${SEEDS-0 1 2}  # SEEDS= (empty): train none, only unpack or evaluate
OUT=${OUT:-runs/long2000}
MODE=${MODE:-auto}
export HF_HUB_OFFLINE=1 OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}

if [ "$MODE" = auto ]; then
  probe=$(mktemp -d)
  if verdict=$("$PYTHON" scripts/rerun.py "$PACK" trafl-b4-s0 --steps 3 --out "$probe/run" 2>&1);
  then MODE=checked; else MODE=anew; fi
  rm -rf "$probe"
  echo "probe against $PACK: $(printf '%s\n' "$verdict" | tail -1) -> MODE=$MODE"
fi
case "$MODE" in
  checked) check=() ;;
  anew) check=(--anew) ;;
  *) echo "MODE=$MODE: valid are auto, checked, anew" >&2; exit 2 ;;
esac

for seed in $SEEDS; do
  run=$OUT/trafl-b4-s$seed
  [ -d "$run/model" ] || "$PYTHON" scripts/rerun.py "$PACK" "trafl-b4-s$seed" "${check[@]}" --out "$run"
done
for seed in 0 1 2; do  # (a folder holding the pack's files is refused by rerun.py)
  [ -d "$OUT/trafl-b4-s$seed/model" ] || {
    echo "$OUT/trafl-b4-s$seed is not made yet: the evaluations wait for all three runs"
    exit 0
  }
done
if [ "$MODE" = checked ]; then
  "$PYTHON" scripts/packs.py --unpack --missing "$PACK" "$OUT"
  exit 0
fi
[ -d "$OUT/base" ] || tar -xzf "$PACK" -C "$OUT" base
# the study's own evaluations of every scheduled checkpoint of the three runs: the flags that
# made long2000, less --extend and the held-out runs (finished runs are not trained)
"$PYTHON" scripts/target_study.py --out "$OUT" --workers 1 --seeds 3 --betas 4 --baselines \
  --mu-betas --path-betas --lr-betas --explore-betas --heldout --trafl-steps 2000 --points 10
