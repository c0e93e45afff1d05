#!/usr/bin/env bash
# The Debian 12 packages that scripts/gpu_check.sh builds sgs with on a GPU
# machine that has a pip-installed CUDA PyTorch, cmake, ninja and a compiler
# but no package registry: the -dev packages of a training-only build (no
# OpenCV) and the shared libraries they need, fetched with `apt-get download`
# on a Debian 12 machine (this one).
#
# For bench_dependence's comparison with the authors' mutual-information code
# it also holds Debian 13's python3-fast-histogram (a stable-ABI extension
# built against NumPy 2, which a pip-installed NumPy 2 loads; fetched with a
# private apt state, the machine's own sources untouched) and, with
# --authors, the authors' dependence.py from a checkout of
# Ascend-Research/Reparameterization.
#
#   scripts/gpu_bundle.sh [--authors CHECKOUT] [DIR]   (default build-gpu-bundle/, ignored by git)
#
# Re-runnable: packages already in DIR are kept. Refuses a bundle over 64 MiB
# (what travels with a working tree). DIR/packages.txt lists what it holds.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/debian_mirror.sh
authors=
dir=build-gpu-bundle
while [ $# -gt 0 ]; do
  case $1 in
    --authors) [ $# -ge 2 ] || { echo "gpu_bundle: --authors needs a checkout" >&2; exit 2; }; authors=$2; shift 2 ;;
    -*) echo "gpu_bundle: unknown option '$1' (known: --authors CHECKOUT)" >&2; exit 2 ;;
    *) dir=$1; shift ;;
  esac
done
if [ -n "$authors" ] && [ ! -f "$authors/dependence.py" ]; then
  echo "gpu_bundle: --authors $authors: no dependence.py there" >&2
  exit 2
fi
limit=$((64 * 1024 * 1024))

dev=(
  libhdf5-dev libhdf5-103-1 libhdf5-cpp-103-1 libhdf5-hl-100 libhdf5-hl-cpp-100
  libboost1.74-dev libboost-program-options1.74-dev libboost-program-options1.74.0
  libboost-filesystem1.74-dev libboost-filesystem1.74.0
  nlohmann-json3-dev doctest-dev zlib1g-dev zlib1g
)
# What the toolchain or every Linux has; never bundled.
base=(libc6 libgcc-s1 libstdc++6)

# The packages of the shared libraries that the bundled libraries load, as
# this machine has them installed (dpkg -S of each ldd path).
runtime_packages() {
  local pkg lib
  for pkg in "${dev[@]}"; do
    dpkg-query -L "$pkg" 2>/dev/null | grep -E '\.so(\.[0-9]+)*$' || true
  done | while read -r lib; do
    [ -f "$lib" ] && ldd "$lib" 2>/dev/null | awk '/=> \// {print $3}'
  done | sort -u | while read -r lib; do
    dpkg -S "$lib" 2>/dev/null || dpkg -S "$(readlink -f "$lib")" 2>/dev/null ||
      dpkg -S "${lib/#\/lib\//\/usr\/lib\/}" 2>/dev/null || dpkg -S "${lib/#\/usr\/lib\//\/lib\/}" 2>/dev/null || true
  done | cut -d: -f1 | sort -u
}

for pkg in "${dev[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" ||
    { echo "gpu_bundle: $pkg is not installed here (scripts/bootstrap.sh installs the build's packages)" >&2; exit 1; }
done
mapfile -t runtime < <(runtime_packages)
want=()
for pkg in "${dev[@]}" "${runtime[@]}"; do
  skip=0
  for b in "${base[@]}"; do [ "$pkg" = "$b" ] && skip=1; done
  [ $skip -eq 1 ] || want+=("$pkg")
done
mapfile -t want < <(printf '%s\n' "${want[@]}" | sort -u)

mkdir -p "$dir"
cd "$dir"
# The archive's current versions (a superseded security update is no longer
# there); the same ABI as the installed ones.
missing=()
for pkg in "${want[@]}"; do
  ls "${pkg}_"*.deb >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "gpu_bundle: downloading ${#missing[@]} packages into $dir"
  apt-get download -q "${missing[@]}" 2>&1 | grep -v -E '^(Get:|W: Download is performed unsandboxed)' || true
fi
for pkg in "${want[@]}"; do
  ls "${pkg}_"*.deb >/dev/null 2>&1 || { echo "gpu_bundle: $pkg was not downloaded" >&2; exit 1; }
done

# Debian 13's fast-histogram, from a private apt state (lists and cache in
# DIR/.apt-trixie) over the archive this machine uses.
if ! ls python3-fast-histogram_*.deb >/dev/null 2>&1; then
  uri=$(debian_mirror gpu_bundle)
  state=$(pwd)/.apt-trixie
  mkdir -p "$state/lists/partial" "$state/cache/archives/partial"
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $uri trixie main" > "$state/sources.list"
  apt_private=(-o "Dir::Etc::SourceList=$state/sources.list" -o Dir::Etc::SourceParts=/dev/null
               -o "Dir::State::Lists=$state/lists" -o "Dir::Cache=$state/cache" -o Dir::State::status=/dev/null)
  echo "gpu_bundle: downloading Debian 13's python3-fast-histogram"
  apt-get "${apt_private[@]}" -q update > "$state/update.log" 2>&1 ||
    { tail -n 3 "$state/update.log" >&2; echo "gpu_bundle: apt-get update of trixie failed (log: $state/update.log)" >&2; exit 1; }
  apt-get "${apt_private[@]}" download -q python3-fast-histogram 2>&1 |
    grep -v -E '^(Get:|W: Download is performed unsandboxed)' || true
  ls python3-fast-histogram_*.deb >/dev/null 2>&1 || { echo "gpu_bundle: python3-fast-histogram was not downloaded" >&2; exit 1; }
  rm -rf "$state"
fi
if [ -n "$authors" ]; then
  mkdir -p authors
  cp "$authors/dependence.py" authors/
  echo "gpu_bundle: the authors' dependence.py from $authors"
fi
printf '%s\n' "${want[@]}" python3-fast-histogram > packages.txt
size=$(cat ./*.deb authors/* 2>/dev/null | wc -c)
echo "gpu_bundle: $dir: $((${#want[@]} + 1)) packages, $(awk -v s="$size" 'BEGIN {printf "%.1f", s / 1048576}') MiB"
[ "$size" -le "$limit" ] || { echo "gpu_bundle: over the 64 MiB that travel with a working tree" >&2; exit 1; }
