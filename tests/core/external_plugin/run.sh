#!/usr/bin/env bash
# Builds the external plugin with CMake and loads it into `sgs` with --plugin.
set -euo pipefail
sgs=$1 include=$2 generated=$3 build=$4
here=$(cd "$(dirname "$0")" && pwd)
cmake -S "$here" -B "$build" -G Ninja -DSGS_INCLUDE_DIR="$include" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" >/dev/null
lib="$build/libexternal_schedule.so"
out=$("$sgs" --plugin "$lib" plugins schedule)
echo "$out"
grep -q "inverse_time - lr_0 / (1 + decay \* step)" <<<"$out"
grep -q "decay (float >= 0, default 0.01)" <<<"$out"
# Without --plugin, the name is unknown and the error says so (exit 2).
set +e
"$sgs" plugins schedule | grep -q inverse_time && { echo "inverse_time listed without --plugin"; exit 1; }
msg=$("$sgs" --plugin "$build/missing.so" plugins 2>&1); rc=$?
set -e
[ "$rc" -eq 2 ] || { echo "missing library: expected exit 2, got $rc"; exit 1; }
grep -q "missing.so" <<<"$msg"
echo "external plugin OK"
