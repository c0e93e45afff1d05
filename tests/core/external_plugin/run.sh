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
grep -q inverse_time <<<"$("$sgs" plugins schedule)" && { echo "inverse_time listed without --plugin"; exit 1; }
msg=$("$sgs" --plugin "$build/missing.so" plugins 2>&1); rc=$?
set -e
[ "$rc" -eq 2 ] || { echo "missing library: expected exit 2, got $rc"; exit 1; }
grep -q "missing.so" <<<"$msg"
# A suite started with --plugin passes it on: its `sgs run` children and the
# Slurm array tasks it emits know the plugin's schedule too.
suite_dir="$build/suite"
rm -rf "$suite_dir" && mkdir -p "$suite_dir"
cat > "$suite_dir/base.json" <<'JSON'
{"epochs": 1, "batch_size": 32, "threads": 1, "data_workers": 0, "device": "cpu",
 "dataset": {"name": "synthetic", "size": 8, "channels": 1, "classes": 4, "train_size": 128, "test_size": 32},
 "model": {"name": "vgg11", "width": 0.125}, "optimizer": {"name": "sgd", "lr": 0.05},
 "schedule": {"name": "inverse_time"}}
JSON
cat > "$suite_dir/suite.json" <<'JSON'
{"base": "base.json", "axes": {"schedule.decay": [0.01, 0.1]}}
JSON
"$sgs" --plugin "$lib" suite "$suite_dir/suite.json" --out "$suite_dir/out" >/dev/null 2>&1 \
  || { echo "suite with --plugin failed:"; cat "$suite_dir"/out/*/log.txt; exit 1; }
[ "$(ls "$suite_dir"/out/*/run.h5 | wc -l)" -eq 2 ] || { echo "suite: expected 2 run.h5"; exit 1; }
rm -rf "$suite_dir/out2"
"$sgs" --plugin "$lib" suite "$suite_dir/suite.json" --out "$suite_dir/out2" --emit-slurm "$suite_dir/array.sh" >/dev/null
grep -q -- "'--plugin' '[^']*libexternal_schedule.so' suite " "$suite_dir/array.sh" \
  || { echo "emitted Slurm script lacks --plugin:"; cat "$suite_dir/array.sh"; exit 1; }
echo "external plugin OK"
