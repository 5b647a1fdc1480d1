#!/usr/bin/env bash
# Section 11's K = 16 arm, its first half on one CUDA GPU (docs/TARGET.md section 11, "How the
# K = 16 arm is to be run"): the three 2000-step b = 4 runs made anew, evaluated at steps 1000
# and 2000, stopped with a checkpoint SECONDS after the start if not done, and carried back with
# what resumes them (`packs.py --resumable --steps 2400`: each run's last checkpoint, about
# 14 MiB a seed, one file each, under a device's 16 MiB a file).
#
#   PYTHON=python3 PYTHONPATH=$PWD/src bash scripts/gpu_long2000.sh 520   # in a 600 s call; $OUT: where files go back
#   DEVICE=cpu bash scripts/gpu_long2000.sh 30 --pool 4 --samples 8 --prompts 2   # a dry run here
#
# At about a third of a second a step (section 15's any-order rate, three runs at once; this
# decoding's own rate on a GPU is not measured) 2000 steps take about 11 minutes: the first call
# stops near step 1500. Call it again at once (a warm device machine keeps runs/ for 30 s after
# a call; a fresh one starts the runs again) with SECONDS = the device time left less about
# 90 s, so that the packing still runs inside it. Evaluations and packing take about a minute
# after the deadline. A run still unfinished travels with its checkpoint (one checkpoint a
# file) and is finished where it lands. Then, where the files come back: unpack each (`python scripts/packs.py --unpack FILE
# runs/long2000-gpu`), finish any run the deadline stopped (this script's study command with
# --device cpu), and continue them (section 11's `--extend runs/long2000-gpu` command).
set -uo pipefail
cd "$(dirname "$0")/.."
SECONDS_LEFT=${1:?usage: gpu_long2000.sh SECONDS [STUDY OPTIONS] (training stops then)}
shift
case "$SECONDS_LEFT" in
  ''|*[!0-9]*) echo "SECONDS=$SECONDS_LEFT: a whole number of seconds" >&2; exit 2 ;;
esac
DEVICE=${DEVICE:-cuda}
PYTHON=${PYTHON:-.venv/bin/python}
DEST=${OUT:-runs/long2000-gpu-carry}
mkdir -p "$DEST"
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv -l 15 \
  > "$DEST/gpu_utilisation_long2000.csv" 2>&1 &
monitor=$!
"$PYTHON" scripts/target_study.py --out runs/long2000-gpu --device "$DEVICE" --workers 3 --seeds 3 \
  --betas 4 --baselines --mu-betas --path-betas --lr-betas --explore-betas --heldout \
  --trafl-steps 2000 --points 2 --deadline "$SECONDS_LEFT" --stop $((SECONDS_LEFT + 40)) "$@"
status=$?
kill "$monitor" 2>/dev/null
"$PYTHON" scripts/packs.py --resumable --steps 2400 runs/long2000-gpu "$DEST" || status=$?
for log in runs/long2000-gpu/trafl-b4-s*/log.txt; do
  echo "$log: $(grep "stopped by\|saved\|trafl train:" "$log" | tail -n 1)"
done
exit $status
