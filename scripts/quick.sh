#!/usr/bin/env bash
# The main job: VGG-11 (width 1/4) on Fashion-MNIST, baseline vs SGS
# (mutual information, k = 5), then a table of the results.
#   scripts/quick.sh [OUT_DIR]      (default runs/quick; runs already completed there are kept)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-runs/quick}
mkdir -p "$out"
rows=()
for name in fashion_mnist fashion_mnist_sgs; do
  echo "== $name" >&2
  row=$(build/sgs run "experiments/quick/$name.json" --out "$out/$name" --resume --progress lines | tail -n 1)
  rows+=("$row")
done
echo
printf '%-28s %-10s %-7s %-10s %-9s %s\n' run status epochs train_acc test_acc train_seconds
for row in "${rows[@]}"; do
  IFS=$'\t' read -r run status epochs train val test seconds <<<"$row"
  printf '%-28s %-10s %-7s %-10s %-9s %s\n' "$run" "$status" "$epochs" "$train" "$test" "$seconds"
done
