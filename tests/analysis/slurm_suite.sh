#!/usr/bin/env bash
# A suite on a real one-node Slurm cluster (tests/support/slurm_cluster.sh):
# `sgs suite --slurm` submits the search stage as a job array, follows it,
# chooses k, submits the final stage; every run must complete through Slurm.
#   slurm_suite.sh SGS_BINARY CLUSTER_SCRIPT
# Exit 77 (skipped, with a "SKIPPED: ..." line) when Slurm or munge is missing.
set -uo pipefail
sgs=$1
cluster=$2

tmp=$(mktemp -d /tmp/sgs_slurm_suite.XXXXXX)
chmod 755 "$tmp"  # munged runs as the munge user
cleanup() {
  bash "$cluster" stop "$tmp/cluster"
  rm -rf "$tmp"
}
trap cleanup EXIT

msg=$(bash "$cluster" start "$tmp/cluster" 2>&1)
rc=$?
if [ $rc -eq 77 ]; then
  echo "$msg" | grep SKIPPED
  exit 77
fi
[ $rc -eq 0 ] || { echo "FAIL: the Slurm cluster did not start"; echo "$msg"; exit 1; }
source "$tmp/cluster/env"

cat > "$tmp/suite.json" <<'EOF'
{
  "description": "Slurm test: baseline, and mutual information searched over k on a validation split",
  "base": {
    "epochs": 1, "batch_size": 32, "eval_batch_size": 64, "threads": 1, "data_workers": 1, "device": "cpu",
    "dataset": {"name": "synthetic", "size": 8, "channels": 1, "classes": 4, "train_size": 128, "test_size": 64},
    "model": {"name": "vgg11", "width": 0.125}
  },
  "variants": [
    {"name": "baseline", "set": {"strategy": "none"}},
    {"name": "mi", "set": {"strategy": "mutual_information", "strategy.batches": 1, "strategy.warmup_epochs": 0},
     "axes": {"strategy.k": [3, 5]}}
  ],
  "search": {
    "over": ["strategy.k"],
    "set": {"dataset.val_fraction": 0.25},
    "final": {"set": {"dataset.val_fraction": 0.0}, "axes": {"seed": [0, 1]}}
  }
}
EOF

out="$tmp/out"
if ! timeout 240 "$sgs" suite "$tmp/suite.json" --out "$out" --slurm --threads 1 > "$tmp/stdout" 2> "$tmp/stderr"; then
  echo "FAIL: sgs suite --slurm failed"; cat "$tmp/stdout" "$tmp/stderr"
  for f in "$out"/slurm/*.out; do echo "--- $f"; cat "$f"; done
  exit 1
fi
cat "$tmp/stderr" "$tmp/stdout"

fail=0
runs="final/baseline/seed=0 final/baseline/seed=1 search/mi/k=3 search/mi/k=5 final/mi/seed=0 final/mi/seed=1"
dry=$("$sgs" suite "$tmp/suite.json" --out "$out" --threads 1 --dry-run)
for run in $runs; do
  # completed according to run.h5 ...
  grep -Eq "^  [0-9]+ +$run +completed" <<<"$dry" || { echo "FAIL: $run is not completed"; fail=1; }
  # ... and run by a Slurm array task (no `cat | grep -q`: under pipefail grep's
  # early exit can kill cat with SIGPIPE and fail the pipeline)
  grep -qsF "$run: completed (" "$out"/slurm/*.out ||
    { echo "FAIL: no Slurm task output says $run completed"; fail=1; }
done
[ -f "$out/slurm/stage1.sh" ] && [ -f "$out/slurm/stage2.sh" ] || { echo "FAIL: no stage scripts"; fail=1; }
grep -q '"chosen"' "$out/selection.json" || { echo "FAIL: no selection.json"; fail=1; }
grep -q "6 runs, 6 completed" "$tmp/stdout" || { echo "FAIL: the report does not say 6 completed"; fail=1; }
[ $fail -eq 0 ] && echo "PASS: 6 runs completed through Slurm in 2 stages"
exit $fail
