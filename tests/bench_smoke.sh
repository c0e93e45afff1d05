#!/usr/bin/env bash
# The benchmarks still run (CI never runs them otherwise): each on the CPU
# with the smallest sizes, its table checked for the rows it must print, and
# a bad --device refused with a line naming the flag.
#   tests/bench_smoke.sh BENCH_DIR
set -euo pipefail
dir=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "bench_smoke: $*" >&2; exit 1; }
# expect NAME PATTERN: NAME's output has a line matching the extended regex.
expect() { grep -Eq "$2" "$work/$1.out" || { cat "$work/$1.out" "$work/$1.err"; fail "$1: no line matching '$2'"; }; }
run() {
  local name=$1
  shift
  "$dir/$name" "$@" > "$work/$name.out" 2> "$work/$name.err" || { cat "$work/$name.out" "$work/$name.err"; fail "$name $* failed"; }
}

for b in bench_train bench_dependence bench_overhead bench_structural; do
  if "$dir/$b" --device gpu > "$work/bad.out" 2> "$work/bad.err"; then fail "$b --device gpu: accepted"; fi
  grep -q -- "--device: 'gpu' is not one of auto, cpu, cuda" "$work/bad.err" || { cat "$work/bad.err"; fail "$b --device gpu: not named"; }
done

num='[0-9]+(\.[0-9]+)?'
run bench_train --device cpu --model vgg11 --widths 0.25 --settings fp32 --batch 4 --steps 1 --rounds 1 --threads 1
expect bench_train "^0\.25 +fp32 +$num "
run bench_structural --device cpu --model vgg11 --batches 2 --rounds 1 --steps 1 --warmup 0 --threads 1 \
  --strategies none,mutual_information,dbb,qarepvgg,orepa,repopt,repopt_target --update-batches 1
for s in none mutual_information dbb qarepvgg orepa repopt repopt_target; do expect bench_structural "^2 +$s +$num +$num "; done
expect bench_structural "^batch 2: SGS / DBB step time $num"
expect bench_structural "^batch 2: OREPA / DBB step time $num"
run bench_dependence --device cpu --images 2 --repeats 1 --threads 1
expect bench_dependence "^features\.3 +max-pool +2x64x34x34 +$num +$num "
expect bench_dependence "^total +$num +$num "
cat > "$work/sgs.json" <<'JSON'
{"seed": 0, "epochs": 2, "batch_size": 8, "threads": 1,
 "dataset": {"name": "synthetic", "size": 16, "train_size": 32, "test_size": 8},
 "model": {"name": "vgg11", "width": 0.125},
 "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9},
 "strategy": {"name": "mutual_information", "batches": 1, "every": 1, "warmup_epochs": 1}}
JSON
run bench_overhead --device cpu --config "$work/sgs.json" --repeats 1 --steps 1 --skip-runs
expect bench_overhead "^scaling update +$num ms"
expect bench_overhead "^gradient multiply \( *8 convs\) +$num ms"
expect bench_overhead "^\(a\) scaling update / epoch: +$num %"
run bench_deploy --models vgg11 --width 0.125 --strategies none,dbb --batches 1 --rounds 1 --iters 1 --threads 1
for s in none dbb; do
  for r in branched_libtorch fused_libtorch; do expect bench_deploy "^vgg11 +$s +1 +$r +$num +$num +$num "; done
done
if grep -q '^opencv_fp32, opencv_int8: skipped' "$work/bench_deploy.out"; then
  echo "bench_smoke: bench_deploy: this build has no ONNX or OpenCV DNN: its opencv rows not checked"
else
  for s in none dbb; do
    for r in opencv_fp32 opencv_int8; do expect bench_deploy "^vgg11 +$s +1 +$r +$num +$num +$num "; done
  done
fi
expect bench_deploy "^vgg11 batch 1: fused / plain: dbb $num; branched dbb / fused: $num"
expect bench_deploy "^equivalence: every fp32 form within 1e-3 of fused_libtorch"
echo "bench_smoke: bench_train, bench_structural, bench_dependence, bench_overhead, bench_deploy ran; --device checked" \
  "on each but bench_deploy (CPU only)"
