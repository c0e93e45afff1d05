#!/usr/bin/env bash
# Post-training int8 of every completed run under RUNS_DIR (the studies:
# experiments/quick/study_fashion_mnist.json and its longer regime): sgs
# quantize with per-channel and with per-tensor weights (symmetric minmax
# activations, 32 calibration batches), each record in the run's run.h5
# (/deploy/int8/...). Resumable: a run that already has a configuration's
# record is skipped; JOBS runs at a time, one thread each.
#   scripts/study_int8.sh RUNS_DIR [JOBS]
set -euo pipefail
runs=${1:?usage: scripts/study_int8.sh RUNS_DIR [JOBS]}
jobs=${2:-2}
sgs=$(cd "$(dirname "$0")/.." && pwd)/build/sgs
[ -d "$runs" ] || { echo "study_int8.sh: $runs: no such directory" >&2; exit 2; }
# Prints "DIR WEIGHTS..." for each completed run lacking records.
todo=$(/usr/bin/python3 - "$runs" <<'PY'
import os, sys, h5py
for root, dirs, files in sorted(os.walk(sys.argv[1])):
    dirs.sort()
    if "run.h5" not in files:
        continue
    try:
        with h5py.File(os.path.join(root, "run.h5"), "r") as f:
            if f.attrs.get("status") not in ("completed", b"completed"):
                continue
            missing = [w for w in ("per-channel", "per-tensor") if f"deploy/int8/{w}_symmetric_minmax" not in f]
            if missing:
                print(root, *missing)
    except OSError as e:
        print(f"study_int8.sh: {root}/run.h5: {e}", file=sys.stderr)
PY
)
n=$(printf '%s' "$todo" | grep -c . || true)
echo "study_int8.sh: $n runs to quantize under $runs ($jobs at a time)"
[ "$n" -eq 0 ] && exit 0
start=$SECONDS
# One job per run (its configurations in turn: each sgs quantize takes the run's lock).
printf '%s\n' "$todo" | xargs -P "$jobs" -L 1 sh -c \
  'dir=$1; shift; for w in "$@"; do "$0" quantize "$dir" --weights "$w" --threads 1 >/dev/null || exit 1; done; echo "  $dir $*"' "$sgs"
echo "study_int8.sh: done in $((SECONDS - start)) s"
