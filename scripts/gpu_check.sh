#!/usr/bin/env bash
# Builds and tests sgs on a GPU machine that has a pip-installed CUDA PyTorch,
# cmake, ninja and a C++ compiler but no package registry. The other
# dependencies come as the Debian 12 packages of scripts/gpu_bundle.sh (run
# beforehand on a Debian 12 machine; they travel with the working tree), which
# this script unpacks into a private prefix: nothing is installed.
#
#   scripts/gpu_check.sh [BUNDLE_DIR]      (default build-gpu-bundle/)
#   environment: OUT (the output folder; default gpu-check-out/),
#                PYTHON (the Python with CUDA PyTorch; default python3),
#                TORCH_CMAKE_PREFIX (another CUDA LibTorch's cmake prefix, e.g. an
#                  unpacked LibTorch zip's; then PyTorch is not asked),
#                GPU_CHECK_UNTIL=configure|build (stop after that step: checks
#                  the bundle on a machine without a GPU),
#                GPU_CHECK_SECONDS (the whole check's budget, default 570: the
#                  full test suite, last, stops when it is spent)
#
# Steps, each logged to OUT/gpu_check.log with its time: unpack the bundle;
# configure against torch.utils.cmake_prefix_path (CUDA, NCCL, no OpenCV);
# build; the CTest label `cuda` (tests that need a GPU; they report skipped
# without one); the benchmarks on the GPU, each one's table in
# OUT/bench_NAME.txt (bench_train: C++ against PyTorch's Python loop;
# bench_dependence: on the GPU, on the CPU and the authors' code when the
# bundle holds it; bench_overhead: SGS's cost in VGG-16 epochs,
# experiments/gpu/; bench_structural: plain / SGS / ACB / DBB / RepVGG / DyRep
# step time and CUDA peak memory); then the whole test suite, until the
# budget is spent. Exit status: 0 all passed, 1 a step failed (named on the
# last line), 2 usage or a missing prerequisite.
set -euo pipefail
cd "$(dirname "$0")/.."
src=$(pwd)
bundle=$(cd "${1:-build-gpu-bundle}" 2>/dev/null && pwd) ||
  { echo "gpu_check: no bundle folder '${1:-build-gpu-bundle}' (make it with scripts/gpu_bundle.sh)" >&2; exit 2; }
out=${OUT:-$src/gpu-check-out}
python=${PYTHON:-python3}
mkdir -p "$out"
out=$(cd "$out" && pwd)
work=${TMPDIR:-/tmp}/sgs-gpu-check
prefix=$work/prefix
build=$work/build
exec > >(tee "$out/gpu_check.log") 2>&1

t_start=$(date +%s)
budget=${GPU_CHECK_SECONDS:-570}
step() { echo "== $(date -u +%H:%M:%S) (+$(($(date +%s) - t_start)) s) $*"; }
die() { echo "gpu_check: $*"; exit "${2:-1}"; }

step "machine"
uname -a
nproc
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
for tool in cmake ninja c++ "$python"; do command -v "$tool" >/dev/null || die "'$tool' not found" 2; done
cmake --version | head -n 1
c++ --version | head -n 1

step "PyTorch"
if [ -n "${TORCH_CMAKE_PREFIX:-}" ]; then
  torch_prefix=$TORCH_CMAKE_PREFIX
  torch_version="at $torch_prefix"
  echo "LibTorch from TORCH_CMAKE_PREFIX=$torch_prefix (PyTorch not asked)"
else
  torch_info=$("$python" -c '
import torch
print(torch.__version__)
print(torch.utils.cmake_prefix_path)
print(int(torch.compiled_with_cxx11_abi()))
print(torch.version.cuda or "")
print(int(torch.cuda.is_available()))
') || die "$python cannot import torch" 2
  { read -r torch_version; read -r torch_prefix; read -r cxx11_abi; read -r torch_cuda; read -r cuda_available; } <<<"$torch_info"
  python_torch=1
  echo "torch $torch_version (CUDA ${torch_cuda:-none}, device available: $cuda_available), cmake prefix $torch_prefix"
  [ -n "$torch_cuda" ] || die "torch $torch_version is a CPU build; this check needs a CUDA PyTorch" 2
  # Debian's Boost and HDF5 C++ libraries use the C++11 string ABI.
  [ "$cxx11_abi" = 1 ] || die "torch $torch_version uses the pre-C++11 string ABI (_GLIBCXX_USE_CXX11_ABI=0); the bundled Debian libraries need a PyTorch built with the C++11 ABI (2.7 or later)" 2
fi

# LibTorch's CMake config enables CUDA: it needs nvcc (the CUDA toolkit, or
# pip's nvidia-cuda-nvcc-cu12).
nvcc=${CUDACXX:-}
if [ -z "$nvcc" ]; then
  for candidate in "$(command -v nvcc || true)" "${CUDA_HOME:-/usr/local/cuda}/bin/nvcc" /usr/local/cuda/bin/nvcc \
                   "$("$python" -c 'import nvidia.cuda_nvcc, os; print(os.path.join(list(nvidia.cuda_nvcc.__path__)[0], "bin", "nvcc"))' 2>/dev/null || true)"; do
    [ -n "$candidate" ] && [ -x "$candidate" ] && { nvcc=$candidate; break; }
  done
fi
[ -n "$nvcc" ] || die "no nvcc (LibTorch's CMake config needs the CUDA toolkit): set CUDACXX, CUDA_HOME, or pip install nvidia-cuda-nvcc-cu12" 2
echo "nvcc: $nvcc ($("$nvcc" --version | tail -n 1))"

step "unpacking $(ls "$bundle"/*.deb | wc -l) packages of $bundle into $prefix"
rm -rf "$prefix"
mkdir -p "$prefix"
"$python" - "$prefix" "$bundle"/*.deb <<'EOF'
# A .deb is an ar archive holding data.tar.*: unpacked without dpkg.
import io, os, sys, tarfile
prefix = sys.argv[1]
for deb in sys.argv[2:]:
    with open(deb, "rb") as f:
        if f.read(8) != b"!<arch>\n":
            sys.exit(f"gpu_check: {deb}: not a .deb (ar) archive")
        while True:
            header = f.read(60)
            if len(header) < 60:
                sys.exit(f"gpu_check: {deb}: no data.tar member")
            name = header[:16].decode().strip().rstrip("/")
            size = int(header[48:58].decode().strip())
            body = f.read(size)
            if size % 2:
                f.read(1)
            if name.startswith("data.tar"):
                with tarfile.open(fileobj=io.BytesIO(body)) as tar:
                    # Debian's own archives: symbolic links and modes as they are.
                    trusted = {"filter": "fully_trusted"} if hasattr(tarfile, "fully_trusted_filter") else {}
                    tar.extractall(prefix, **trusted)
                break
EOF
# Absolute symbolic links (libz.so -> /lib/...) made relative to the prefix.
find "$prefix" -type l -lname '/*' | while read -r link; do
  target=$(readlink "$link")
  [ -e "$prefix$target" ] || target=${target/#\/lib\//\/usr\/lib\/}
  ln -sfn "$prefix$target" "$link"
done
arch_lib=$prefix/usr/lib/x86_64-linux-gnu
# At run time only the bundled libraries this machine lacks are put on the
# library path (its own libssl, libcurl, ... stay in use).
mkdir -p "$prefix/runtime"
for lib in "$arch_lib"/*.so.*; do
  soname=$(basename "$lib")
  ldconfig -p 2>/dev/null | grep -q " $soname " || ln -sfn "$lib" "$prefix/runtime/$soname"
done
export LD_LIBRARY_PATH=$prefix/runtime${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
echo "on the library path from the bundle: $(ls "$prefix/runtime" | wc -l) libraries"
# Python modules of the bundle (fast_histogram, for the authors' code).
python_path=$prefix/usr/lib/python3/dist-packages${PYTHONPATH:+:$PYTHONPATH}

step "configure (CUDA LibTorch $torch_version, OpenCV off)"
nccl_include=$("$python" -c 'import nvidia.nccl, os; print(os.path.join(list(nvidia.nccl.__path__)[0], "include"))' 2>/dev/null || true)
cmake -S "$src" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DSGS_WITH_OPENCV=OFF \
  "-DCMAKE_PREFIX_PATH=$torch_prefix;$prefix/usr" "-DCMAKE_CUDA_COMPILER=$nvcc" \
  "-DHDF5_ROOT=$arch_lib/hdf5/serial" -DHDF5_C_COMPILER_EXECUTABLE=HDF5_C_COMPILER_EXECUTABLE-NOTFOUND \
  -DHDF5_CXX_COMPILER_EXECUTABLE=HDF5_CXX_COMPILER_EXECUTABLE-NOTFOUND \
  "-DBoost_DIR=$arch_lib/cmake/Boost-1.74.0" "-Dnlohmann_json_DIR=$prefix/usr/share/cmake/nlohmann_json" \
  "-Ddoctest_DIR=$prefix/usr/lib/cmake/doctest" "-DZLIB_ROOT=$prefix/usr" \
  ${nccl_include:+"-DNCCL_INCLUDE_DIR=$nccl_include"} > "$out/configure.log" 2>&1 ||
  { tail -n 30 "$out/configure.log"; die "configure failed (log: $out/configure.log)"; }
grep -E '^-- (OpenCV|gloo|nccl)|HDF5|Boost' "$out/configure.log" | head -n 10 || true
grep -q -- '-DSGS_C10D_NCCL .*core/src/distributed.cpp' "$build/compile_commands.json" &&
  echo "NCCL: core/src/distributed.cpp is compiled with SGS_C10D_NCCL" || echo "NCCL: not found; CUDA ranks use Gloo"

[ "${GPU_CHECK_UNTIL:-}" != configure ] || { step "done (GPU_CHECK_UNTIL=configure)"; exit 0; }
step "build ($(nproc) jobs)"
cmake --build "$build" -- -k 0 -j"$(nproc)" > "$out/build.log" 2>&1 ||
  { grep -E 'error:|FAILED:' "$out/build.log" | head -n 30; die "build failed (log: $out/build.log)"; }

[ "${GPU_CHECK_UNTIL:-}" != build ] || { step "done (GPU_CHECK_UNTIL=build)"; exit 0; }
failed=()  # the steps that failed
step "ctest -L cuda"
ctest --test-dir "$build" -L cuda --output-on-failure > "$out/ctest_cuda.log" 2>&1 || failed+=("ctest -L cuda")
tail -n 15 "$out/ctest_cuda.log"

# bench NAME SECONDS ARGS...: one benchmark on the GPU, its table in OUT/bench_NAME.txt.
bench() {
  local name=$1 limit=$2
  shift 2
  step "$name (at most $limit s): $*"
  if timeout "$limit" "$build/bench/$name" "$@" > "$out/$name.txt" 2> "$out/$name.stderr"; then
    cat "$out/$name.txt"
  else
    local rc=$?
    tail -n 20 "$out/$name.txt" "$out/$name.stderr"
    echo "$name failed (status $rc$([ "$rc" -eq 124 ] && echo ": over $limit s"))"
    failed+=("$name")
  fi
}
gpu=${cuda_available:-}
[ -n "$gpu" ] || { nvidia-smi -L >/dev/null 2>&1 && gpu=1 || gpu=0; }
if [ "$gpu" = 1 ]; then
  threads=$(nproc)
  # Against PyTorch's Python loop where PyTorch was asked (its start-ups take the longer limit).
  train_python=() train_limit=90
  [ -z "${python_torch:-}" ] || { train_python=(--python "$python"); train_limit=150; }
  bench bench_train "$train_limit" --device cuda "${train_python[@]}" --widths 1 --threads "$threads" --steps 50 \
    --rounds 2 --settings fp32,channels_last,bf16,bf16+channels_last,fp16+channels_last
  authors=()
  if [ -f "$bundle/authors/dependence.py" ]; then
    if PYTHONPATH=$python_path "$python" -c 'import fast_histogram, h5py, numpy, torch' 2>/dev/null; then
      authors=(--authors "$bundle/authors" --python "$python")
    else
      echo "bench_dependence: the authors' code not timed: $python cannot import fast_histogram, h5py, numpy and torch"
    fi
  else
    echo "bench_dependence: the authors' code not timed: the bundle has no authors/dependence.py (gpu_bundle.sh --authors)"
  fi
  PYTHONPATH=$python_path bench bench_dependence 120 --device cuda --threads "$threads" "${authors[@]}"
  bench bench_overhead 120 --device cuda --config "$src/experiments/gpu/overhead_vgg16_sgs.json" --skip-runs \
    --repeats 5 --steps 20
  bench bench_structural 150 --device cuda --threads "$threads" --batches 128 --rounds 2 --steps 10 --warmup 3
else
  step "benchmarks skipped: no CUDA device"
fi

left=$((budget - ($(date +%s) - t_start)))
step "ctest (all), until the budget's end ($left s left)"
if [ "$left" -gt 30 ]; then
  ctest --test-dir "$build" -j"$(nproc)" --output-on-failure --timeout 300 \
    --stop-time "$(date -d "@$((t_start + budget - 10))" +%H:%M:%S)" > "$out/ctest_all.log" 2>&1 ||
    failed+=("ctest (all)")
  grep -E 'tests passed|\*\*\*Failed|\*\*\*Skipped|Timeout|Not Run' "$out/ctest_all.log" | tail -n 20
  total=$(ctest --test-dir "$build" -N | sed -n 's/^Total Tests: //p')
  ran=$(sed -n 's/.*tests failed out of \([0-9]*\).*/\1/p' "$out/ctest_all.log" | tail -n 1)
  [ "${ran:-0}" = "$total" ] ||
    echo "stopped at the budget's end: ${ran:-0} of $total tests started (the last ones cut off show as Timeout)"
else
  echo "not run: under 30 s of the budget left"
  failed+=("ctest (all): no time left")
fi

step "done, ${#failed[@]} steps failed"
[ ${#failed[@]} -eq 0 ] || die "failed: ${failed[*]} (logs in $out)"
