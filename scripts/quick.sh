#!/usr/bin/env bash
# The main job: VGG-11 (width 1/4) on Fashion-MNIST, baseline vs SGS (mutual
# information, k = 5), both arms at once (one compute thread each), then a
# table of the results, the difference, and the figures.
#   scripts/quick.sh [OUT_DIR]      (default runs/quick; arms already completed there are kept)
# Configs: experiments/main/{baseline,sgs}.json. Each arm's output is in
# OUT_DIR/<arm>.log; its run files in OUT_DIR/<arm>/.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-runs/quick}
arms=(baseline sgs)
mkdir -p "$out"
[ -x build/sgs ] || { echo "quick.sh: build/sgs not found: run scripts/bootstrap.sh first" >&2; exit 2; }

tty=0
[ -t 2 ] && tty=1
every=15
[ "$tty" -eq 1 ] && every=1
start=$SECONDS
pids=()
for arm in "${arms[@]}"; do
  # Two processes on two cores: one compute thread and one loader thread each
  # (docs/benchmarks.md, "The main job": faster than one after the other).
  build/sgs run "experiments/main/$arm.json" --out "$out/$arm" --resume --set threads=1 --set data_workers=1 \
    --progress lines --progress-every "$every" >"$out/$arm.tsv" 2>"$out/$arm.log" &
  pids+=($!)
done
trap 'kill -TERM "${pids[@]}" 2>/dev/null; wait; exit 130' INT TERM

# One live line per arm: the last progress line of its log.
status_lines() {
  for arm in "${arms[@]}"; do
    local last
    last=$(tail -n 1 "$out/$arm.log" 2>/dev/null | tr -d '\r')
    printf '%-9s %s\n' "$arm" "${last:-starting}"
  done
}
shown=""
running() { for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && return 0; done; return 1; }
while running; do
  now=$(status_lines)
  if [ "$tty" -eq 1 ]; then
    [ -n "$shown" ] && printf '\033[%dA' "${#arms[@]}" >&2
    printf '%s\n' "$now" | sed 's/$/\x1b[K/' >&2
    shown=1
  elif [ "$now" != "$shown" ]; then
    printf '%s\n' "$now" >&2
    shown=$now
  fi
  sleep 1
done
failed=0
for i in "${!arms[@]}"; do
  if ! wait "${pids[$i]}"; then
    echo "quick.sh: the ${arms[$i]} arm failed; the end of $out/${arms[$i]}.log:" >&2
    tail -n 5 "$out/${arms[$i]}.log" >&2
    failed=1
  fi
done
[ "$failed" -eq 0 ] || exit 1
[ "$tty" -eq 1 ] && status_lines >&2

echo
printf '%-9s %-10s %-7s %-10s %-9s %s\n' arm status epochs train_acc test_acc train_seconds
declare -A test
for arm in "${arms[@]}"; do
  IFS=$'\t' read -r _ status epochs train _ acc seconds < <(tail -n 1 "$out/$arm.tsv")
  printf '%-9s %-10s %-7s %-10s %-9s %s\n' "$arm" "$status" "$epochs" "$train" "$acc" "$seconds"
  test[$arm]=$acc
done
awk -v b="${test[baseline]}" -v s="${test[sgs]}" 'BEGIN {
  printf "\nSGS - baseline: %+.2f points of test accuracy (one seed: not a comparison; the suites give intervals)\n", s - b }'
echo "wall time: $((SECONDS - start)) s"
echo "run files: $out/baseline/run.h5, $out/sgs/run.h5 (docs/run_file.md); logs: $out/*.log"
if build/sgs plot "$out/baseline" "$out/sgs" --out "$out/figures" >/dev/null 2>"$out/plot.log"; then
  echo "figures:   $out/figures/ (curves, scalings, kernel magnitudes: PNG + SVG + CSV)"
else
  echo "figures:   not drawn ($(tail -n 1 "$out/plot.log"))"
fi
