#!/usr/bin/env bash
# The deployment table of docs/benchmarks.md: for every finished run under
# RUNS_DIR (e.g. the suite experiments/quick/deploy_fashion_mnist.json),
# sgs export --check, then sgs quantize with per-channel and per-tensor
# weights and in OpenCV's configuration with --opencv; prints one Markdown
# row per run. Every figure also lands in the run's run.h5 (/deploy).
#   scripts/deploy_table.sh RUNS_DIR ONNX_DIR [THREADS [RUN...]]   (RUN...: only these runs, by folder name)
set -euo pipefail
runs=${1:?usage: scripts/deploy_table.sh RUNS_DIR ONNX_DIR [THREADS]}
onnx=${2:?usage: scripts/deploy_table.sh RUNS_DIR ONNX_DIR [THREADS]}
threads=${3:-2}
only=("${@:4}")
sgs=$(dirname "$0")/../build/sgs
mkdir -p "$onnx"
# The line of a verb's output that starts with $1 (tab-separated fields).
row() { grep -E "^$1" | head -n 1; }
field() { cut -f "$1"; }
echo "| run | strategy | fp32 test acc (%) | export --check: max abs logit diff, argmax agreement | int8 per-channel (%) | drop | int8 per-tensor (%) | drop | simulated int8, OpenCV's configuration (%) | OpenCV int8 (%) | difference (points) |"
echo "|---|---|---|---|---|---|---|---|---|---|---|"
for h5 in $(find "$runs" -name run.h5 | sort); do
  dir=$(dirname "$h5")
  name=$(basename "$dir")
  if [ ${#only[@]} -gt 0 ] && ! printf '%s\n' "${only[@]}" | grep -qxF "$name"; then continue; fi
  out=$("$sgs" export "$dir" --out "$onnx/$name.onnx" --check --threads "$threads")
  strategy=$(echo "$out" | sed -n 's/.*strategy \([a-z_]*\),.*/\1/p')
  check=$(echo "$out" | row opencv_dnn)
  pc=$("$sgs" quantize "$dir" --weights per-channel --threads "$threads" | row per-channel_symmetric_minmax)
  pt=$("$sgs" quantize "$dir" --weights per-tensor --threads "$threads" | row per-tensor_symmetric_minmax)
  cv=$("$sgs" quantize "$dir" --weights per-channel --activations asymmetric --calibration minmax --opencv \
    --threads "$threads")
  sim=$(echo "$cv" | row per-channel_asymmetric_minmax)
  ocv=$(echo "$cv" | row "opencv_dnn .* int8")
  echo "| $name | $strategy | $(echo "$pc" | field 5) | $(echo "$check" | field 5), $(echo "$check" | field 7)" \
    "| $(echo "$pc" | field 6) | $(echo "$pc" | field 7) | $(echo "$pt" | field 6) | $(echo "$pt" | field 7)" \
    "| $(echo "$sim" | field 6) | $(echo "$ocv" | field 2) | $(echo "$ocv" | field 4 | sed 's/difference //; s/ pp//') |"
done
