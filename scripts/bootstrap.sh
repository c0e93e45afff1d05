#!/usr/bin/env bash
# Installs what sgs needs from Debian 12 packages (only what is missing; quiet
# when everything is there), then configures and builds into build/.
#   scripts/bootstrap.sh [--bench] [--no-build]
#   --bench     also install what the benchmarks compare against (python3-torch, torchvision, numpy, fast-histogram)
#   --no-build  install only
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  g++ cmake ninja-build git pkg-config
  ccache mold        # a compiler cache and a fast linker (CMake uses them when present)
  libtorch-dev libgloo-dev libopenblas0-pthread
  libopencv-core-dev libopencv-imgproc-dev libopencv-imgcodecs-dev
  libonnx-dev libopencv-dnn-dev   # sgs export: ONNX files, and a second runtime for --check
  libhdf5-dev libboost-program-options-dev libboost-filesystem-dev libboost-math-dev
  nlohmann-json3-dev doctest-dev zlib1g-dev
  dataset-fashion-mnist
  slurm-wlm munge   # the Slurm test of `sgs suite` starts a one-node cluster
  python3-h5py      # a test runs docs/run_file.md's h5py example on a run file
)
build=1
for arg in "$@"; do
  case "$arg" in
    --bench) packages+=(python3-torch python3-torchvision python3-numpy python3-fast-histogram) ;;
    --no-build) build=0 ;;
    *) echo "bootstrap.sh: unknown option '$arg' (known: --bench, --no-build)" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "bootstrap: installing ${missing[*]}"
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ "$build" -eq 1 ]; then
  [ -f build/build.ninja ] || cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
  # Ninja's [n/N] line for each step as it goes, the full log (warnings
  # included) in build/build.log, the errors again on failure.
  start=$SECONDS
  set +e
  cmake --build build -- -j"$(nproc)" 2>&1 | tee build/build.log | grep --line-buffered -E '^\[[0-9]+/[0-9]+\]'
  rc=${PIPESTATUS[0]}
  set -e
  if [ "$rc" -ne 0 ]; then
    grep -Ev '^\[[0-9]+/[0-9]+\] (Building|Linking)' build/build.log | tail -n 60 >&2
    echo "bootstrap: build failed (full log: build/build.log)" >&2
    exit 1
  fi
  echo "bootstrap: built in $((SECONDS - start)) s (log: build/build.log)"
  grep -E 'warning:' build/build.log | head -n 20 || true
fi
