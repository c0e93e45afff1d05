#!/usr/bin/env bash
# Builds and tests sgs against Debian 13 (trixie)'s LibTorch 2.6 in chroots
# made with debootstrap, beside the Debian 12 LibTorch 1.13 of the host:
#   (a) libtorch-dev (CPU), OpenCV on: the whole test suite;
#   (b) libtorch-cuda-dev with nvidia-cuda-toolkit and libnccl-dev, OpenCV off
#       (the lean cluster build) with the benchmarks: the CUDA and NCCL code
#       paths compiled and linked, the whole test suite run on this machine's
#       CPU.
#
#   scripts/check_debian13.sh [FOLDER]     (root; default /var/tmp/sgs-debian13)
#
# FOLDER/cpu and FOLDER/cuda are the two chroots (Debian 13's libtorch-dev
# and libtorch-cuda-dev conflict with each other). Re-runnable: a finished step (debootstrap, packages, configure)
# is skipped, builds are incremental, configure and the tests always run. The
# source tree is bind-mounted read-only at /src; build folders are FOLDER/*/build. Logs:
# FOLDER/logs/. One summary line per build:
#   debian13 cpu: libtorch 2.6.0, 140/140 tests passed (3 skipped), build (Release) 17.2 min, tests 4.1 min
# SGS_CHECK_OPT=-O1 (say) compiles with those flags instead of Release's.
# Exit status: 0 both builds passed, 1 otherwise, 2 usage.
set -euo pipefail

top=${1:-/var/tmp/sgs-debian13}
[ $# -le 1 ] || { echo "usage: check_debian13.sh [FOLDER]" >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || { echo "check_debian13.sh: needs root (debootstrap, chroot, mounts)" >&2; exit 2; }
src=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$top/logs"
top=$(cd "$top" && pwd)
logs=$top/logs
jobs=$(nproc)
# SGS_CHECK_OPT=-O0 (say) builds with those flags instead of Release's -O2 (-O3 for the dependence kernels):
# the check is about compiling, linking and the tests, and on 2 cores -O3
# takes hours for the two builds.
if [ -n "${SGS_CHECK_OPT:-}" ]; then
  build_type=(-DCMAKE_BUILD_TYPE=None "-DCMAKE_CXX_FLAGS=$SGS_CHECK_OPT" "-DCMAKE_C_FLAGS=$SGS_CHECK_OPT")
  opt_text=$SGS_CHECK_OPT
else
  build_type=(-DCMAKE_BUILD_TYPE=Release)
  opt_text=Release
fi

log() { echo "check_debian13: $*" >&2; }

# The host's Debian archive: debian_mirror.
. "$src/scripts/debian_mirror.sh"

# Mounts made by this run, undone (last first) on exit, whatever the exit;
# what still runs in the chroots (a build, a test's daemon) is stopped first.
mounts=()
stop_chroot_processes() {
  local p r
  for p in /proc/[0-9]*; do
    r=$(readlink "$p/root" 2>/dev/null) || continue
    # SIGCONT too: a stopped process (kill -STOP) takes the TERM only once it runs.
    case "$r" in "$top/cpu" | "$top/cuda") kill "${p#/proc/}" 2>/dev/null && kill -CONT "${p#/proc/}" 2>/dev/null || true ;; esac
  done
}
cleanup() {
  local i
  stop_chroot_processes
  wait 2>/dev/null || true
  for ((i = ${#mounts[@]} - 1; i >= 0; --i)); do
    umount "${mounts[i]}" 2>/dev/null || umount -l "${mounts[i]}" 2>/dev/null || log "could not unmount ${mounts[i]}"
  done
  mounts=()
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mount_once() {  # mount_once TARGET ARGS...: mounts unless TARGET is a mount point already
  local target=$1
  shift
  mkdir -p "$target"
  mountpoint -q "$target" && return 0
  mount "$@" "$target"
  mounts+=("$target")
}

# in ROOT CMD...: runs CMD in the chroot, with proc, sys, dev and /src mounted.
in_root() {
  local root=$1
  shift
  chroot "$root" /usr/bin/env -i HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive "$@"
}

prepare_root() {  # prepare_root ROOT: debootstrap, apt sources, mounts
  local root=$1 url
  if [ ! -f "$root/.sgs-debootstrap-done" ]; then
    command -v debootstrap >/dev/null || { log "installing debootstrap on the host"; apt-get install -y -qq debootstrap >/dev/null; }
    url=$(debian_mirror check_debian13)
    log "debootstrap trixie into $root (log: $logs/debootstrap-$(basename "$root").log)"
    debootstrap --variant=minbase --components=main,contrib,non-free trixie "$root" "$url" \
      > "$logs/debootstrap-$(basename "$root").log" 2>&1 || { log "debootstrap failed: $(tail -n 1 "$logs/debootstrap-$(basename "$root").log")"; exit 1; }
    touch "$root/.sgs-debootstrap-done"
  fi
  if [ ! -f "$root/etc/apt/sources.list.d/debian.sources" ]; then
    url=$(debian_mirror check_debian13)
    rm -f "$root/etc/apt/sources.list"
    printf 'Types: deb\nURIs: %s\nSuites: trixie trixie-updates\nComponents: main contrib non-free\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
      "$url" > "$root/etc/apt/sources.list.d/debian.sources"
  fi
  cp -L /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
  # The host's names too: a Slurm job's rendezvous address is its node's
  # name (this host's), which the chroot's own /etc/hosts does not know.
  cp -L /etc/hosts "$root/etc/hosts"
  mount_once "$root/proc" -t proc proc
  mount_once "$root/sys" -t sysfs sysfs
  mount_once "$root/dev" --bind /dev
  mount_once "$root/dev/pts" --bind /dev/pts
  mount_once "$root/dev/shm" -t tmpfs -o mode=1777 shm
  mount_once "$root/src" --bind "$src"
  mount -o remount,bind,ro "$root/src"
}

# install ROOT NAME PACKAGES...: apt-get install unless the same list was installed before.
install_packages() {
  local root=$1 name=$2
  shift 2
  local want="$*" stamp="$root/.sgs-packages-$name"
  [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && return 0
  log "$name: installing ${#@} packages into $(basename "$root") (log: $logs/apt-$name.log)"
  { in_root "$root" apt-get update && in_root "$root" apt-get install -y --no-install-recommends "$@"; } \
    > "$logs/apt-$name.log" 2>&1 || { log "$name: apt-get failed: $(grep -E '^E:' "$logs/apt-$name.log" | head -n 3 | tr '\n' ' ')"; exit 1; }
  echo "$want" > "$stamp"
}

# Those of the packages that the chroot's archive has.
available() {
  local root=$1 p
  shift
  [ -f "$root/.sgs-apt-updated" ] || { in_root "$root" apt-get update -qq > "$logs/apt-update.log" 2>&1 && touch "$root/.sgs-apt-updated"; }
  for p in "$@"; do
    [ -n "$(in_root "$root" apt-cache madison "$p" 2>/dev/null)" ] && echo "$p" || log "$p: not in Debian 13, left out"
  done
}

common=(
  g++ cmake ninja-build git pkg-config ca-certificates
  libhdf5-dev libboost-program-options-dev libboost-filesystem-dev libboost-math-dev
  nlohmann-json3-dev doctest-dev zlib1g-dev python3
  slurm-wlm munge util-linux procps
)
optional=(dataset-fashion-mnist)
opencv=(libopencv-core-dev libopencv-imgproc-dev libopencv-imgcodecs-dev)

# build NAME ROOT TORCH_PACKAGE CMAKE_ARGS...: configure, build, run the whole
# ctest; the summary line goes to stdout and LOGS/summary-NAME; status 0 when
# every test passed.
build() {
  local name=$1 root=$2 torch_package=$3
  shift 3
  local b=/build t0 t1 t2 version summary passed total skipped rc=0 line
  version=$(in_root "$root" dpkg-query -W -f='${Version}' "$torch_package" 2>/dev/null | sed 's/+.*//')
  rm -f "$logs/summary-$name"
  if ! in_root "$root" cmake -S /src -B $b -G Ninja "${build_type[@]}" "$@" > "$logs/configure-$name.log" 2>&1; then
    echo "debian13 $name: libtorch $version, configure failed (log: $logs/configure-$name.log)" | tee "$logs/summary-$name"
    return 1
  fi
  log "$name: building (log: $logs/build-$name.log)"
  t0=$(date +%s)
  if ! in_root "$root" cmake --build $b -- -k 0 -j"$jobs" > "$logs/build-$name.log" 2>&1; then
    grep -E 'error:|FAILED:' "$logs/build-$name.log" | head -n 20 >&2
    echo "debian13 $name: libtorch $version, build failed (log: $logs/build-$name.log)" | tee "$logs/summary-$name"
    return 1
  fi
  t1=$(date +%s)
  log "$name: testing (log: $logs/test-$name.log)"
  in_root "$root" ctest --test-dir $b -j"$jobs" --output-on-failure > "$logs/test-$name.log" 2>&1 || rc=$?
  t2=$(date +%s)
  summary=$(grep -E 'tests passed, [0-9]+ tests failed out of [0-9]+' "$logs/test-$name.log" | tail -n 1)
  if [ -z "$summary" ]; then
    echo "debian13 $name: libtorch $version, ctest did not finish (log: $logs/test-$name.log)" | tee "$logs/summary-$name"
    return 1
  fi
  total=$(sed -E 's/.*out of ([0-9]+).*/\1/' <<<"$summary")
  passed=$((total - $(sed -E 's/.* ([0-9]+) tests failed.*/\1/' <<<"$summary")))
  skipped=$(grep -c -E '\*\*\*Skipped' "$logs/test-$name.log" || true)
  line=$(awk -v n="$name" -v v="$version" -v p="$passed" -v t="$total" -v s="$skipped" -v b=$((t1 - t0)) -v r=$((t2 - t1)) \
           -v o="$opt_text" 'BEGIN {printf "debian13 %s: libtorch %s, %s/%s tests passed (%s skipped), build (%s) %.1f min, tests %.1f min", n, v, p, t, s, o, b / 60, r / 60}')
  echo "$line" | tee "$logs/summary-$name"
  [ "$rc" -eq 0 ] || { grep -E '^ *[0-9]+ - .*\((Failed|Timeout|SEGFAULT|Exception)' "$logs/test-$name.log" >&2; return 1; }
}

# cuDNN is not in Debian's archive: nvidia-cudnn (contrib) downloads it from
# NVIDIA when it is installed, which a machine without internet cannot, yet
# libtorch_cuda.so is linked against libcudnn.so.9. In its place goes a
# package of the same name holding a libcudnn.so.9 that defines the cudnn*
# symbols LibTorch needs (found in its libraries) and aborts, naming the
# function, if one is ever called: enough to link and load the CUDA LibTorch
# on a machine without a GPU, where no cuDNN code runs.
cudnn_stub() {  # cudnn_stub ROOT: builds ROOT/var/cache/sgs/nvidia-cudnn-stub.deb once
  local root=$1 work=/var/cache/sgs
  [ -f "$root$work/nvidia-cudnn-stub.deb" ] && return 0
  log "cuda: making the cuDNN stub package (log: $logs/cudnn-stub.log)"
  rm -rf "${root:?}$work" && mkdir -p "$root$work"
  cat > "$root$work/stub.c" <<'EOF'
#include <stdio.h>
#include <stdlib.h>
static void called(const char* f) {
  fprintf(stderr, "libcudnn.so.9 (stub of scripts/check_debian13.sh): %s called, but cuDNN is not installed\n", f);
  abort();
}
EOF
  in_root "$root" sh -euc '
    cd "$1"
    mkdir -p torch pkg/DEBIAN pkg/usr/lib/x86_64-linux-gnu
    apt-get download libtorch-cuda-2.6
    dpkg-deb -x libtorch-cuda-2.6_*.deb torch
    nm -D --undefined-only torch/usr/lib/x86_64-linux-gnu/*.so.* | awk "{print \$2}" |
      sed -n "s/@libcudnn\.so\.9\$//p" | sort -u > symbols
    rm -rf torch libtorch-cuda-2.6_*.deb
    [ -s symbols ] || { echo "no cudnn symbols found in libtorch-cuda-2.6" >&2; exit 1; }
    while read -r f; do echo "int $f(void) { called(\"$f\"); return 0; }"; done < symbols >> stub.c
    echo "libcudnn.so.9 { global: *; };" > stub.map
    gcc -shared -fPIC -O1 -Wall -o pkg/usr/lib/x86_64-linux-gnu/libcudnn.so.9 stub.c -Wl,-soname,libcudnn.so.9 \
      -Wl,--version-script=stub.map
    printf "%s\n" "Package: nvidia-cudnn" "Version: 9.0.0.312~cuda12+sgs.stub1" "Architecture: amd64" \
      "Maintainer: sgs <nobody@localhost>" "Section: contrib/libs" "Priority: optional" \
      "Description: stub libcudnn.so.9 for a GPU-less build check (scripts/check_debian13.sh)" \
      " Every cudnn* function LibTorch links against aborts, naming itself." > pkg/DEBIAN/control
    dpkg-deb --build --root-owner-group pkg nvidia-cudnn-stub.deb.tmp
    mv nvidia-cudnn-stub.deb.tmp nvidia-cudnn-stub.deb
    echo "$(wc -l < symbols) cudnn symbols"
  ' sh "$work" > "$logs/cudnn-stub.log" 2>&1 || { log "cuda: the cuDNN stub failed (log: $logs/cudnn-stub.log)"; exit 1; }
}
# The real nvidia-cudnn, left half-configured by its failed download (an
# earlier apt-get install), goes with what it held back, so that apt works.
drop_real_cudnn() {  # drop_real_cudnn ROOT
  local root=$1
  in_root "$root" dpkg-query -W -f='${Version}' nvidia-cudnn 2>/dev/null | grep -qv sgs || return 0
  log "cuda: removing the real nvidia-cudnn (it cannot download cuDNN here)"
  in_root "$root" dpkg --purge --force-depends nvidia-cudnn libtorch-cuda-dev libtorch-cuda-2.6 > "$logs/cudnn-purge.log" 2>&1
  rm -f "$root/.sgs-packages-cuda"
}

# The two chroots and their packages first (the CUDA ones are large
# downloads), then the builds.
cpu=$top/cpu
cuda=$top/cuda
prepare_root "$cpu"
mapfile -t extra < <(available "$cpu" "${optional[@]}")
install_packages "$cpu" cpu "${common[@]}" "${extra[@]}" "${opencv[@]}" libtorch-dev libgloo-dev
prepare_root "$cuda"
drop_real_cudnn "$cuda"
install_packages "$cuda" cuda-base "${common[@]}" "${extra[@]}"
cudnn_stub "$cuda"
# Gloo's CUDA build (libgloo-cuda-dev, contrib) is the one the CUDA LibTorch
# depends on; it conflicts with libgloo-dev. libcuda1 (the driver's
# user-space library) lets the CUDA LibTorch load where no driver is.
install_packages "$cuda" cuda "${common[@]}" "${extra[@]}" /var/cache/sgs/nvidia-cudnn-stub.deb libtorch-cuda-dev \
  libgloo-cuda-dev nvidia-cuda-toolkit libnccl-dev libcuda1

# The two builds run side by side (separate chroots): (a) CPU, OpenCV on;
# (b) CUDA + NCCL, OpenCV off, the lean cluster build, with the benchmarks
# (as scripts/gpu_check.sh builds it: their CUDA code compiles and links, and
# the CTest bench_smoke runs them on the CPU). The CPU build leaves them out
# (on 2 cores each build takes the better part of an hour).
status=0
build cpu "$cpu" libtorch-dev -DSGS_WITH_OPENCV=ON -DSGS_BUILD_BENCHMARKS=OFF &
cpu_job=$!
build cuda "$cuda" libtorch-cuda-dev -DSGS_WITH_OPENCV=OFF -DSGS_BUILD_BENCHMARKS=ON &
cuda_job=$!
wait $cpu_job || status=1
wait $cuda_job || status=1
# Both c10d backends compiled in: the definitions on distributed.cpp's command line.
for define in SGS_C10D_NCCL SGS_C10D_GLOO; do
  if ! grep -q -- "-D$define .*core/src/distributed.cpp" "$cuda/build/compile_commands.json" 2>/dev/null; then
    echo "debian13 cuda: core/src/distributed.cpp was not compiled with $define" | tee -a "$logs/summary-cuda"
    status=1
  fi
done
# bench_structural's CUDA peak memory (c10_cuda) compiled in.
if ! grep -q -- "-DSGS_BENCH_CUDA_MEMORY .*bench/bench_structural.cpp" "$cuda/build/compile_commands.json" 2>/dev/null; then
  echo "debian13 cuda: bench/bench_structural.cpp was not compiled with SGS_BENCH_CUDA_MEMORY" | tee -a "$logs/summary-cuda"
  status=1
fi

echo "check_debian13: summary" >&2
cat "$logs/summary-cpu" "$logs/summary-cuda"
exit $status
