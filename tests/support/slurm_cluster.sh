#!/usr/bin/env bash
# A one-node Slurm cluster on loopback, for tests (Debian's slurm-wlm and munge,
# run as root).
#
#   slurm_cluster.sh start DIR   # starts munged, slurmctld and slurmd with all
#                                # their files under DIR; waits until the node
#                                # is idle; writes DIR/env (source it: exports
#                                # SLURM_CONF) and prints it
#   slurm_cluster.sh stop DIR    # cancels the cluster's jobs, stops the daemons
#                                # it started (by the pids in DIR/pids)
#
# Exit status of start: 0 up, 77 the packages are missing or this is not root
# (a "SKIPPED: ..." line says why; CTest's SKIP_RETURN_CODE), 1 it did not come
# up (the daemons' logs are printed). Ports are picked at random among free
# ones, so that several clusters can run side by side.
set -uo pipefail

usage() { echo "usage: slurm_cluster.sh start|stop DIR" >&2; exit 2; }
[ $# -eq 2 ] || usage
action=$1
dir=$2

skip() { echo "SKIPPED: $*"; exit 77; }

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
pick_port() {
  local p
  for _ in $(seq 1 50); do
    p=$((20000 + RANDOM % 30000))
    port_free "$p" && port_free "$((p + 1))" && { echo "$p"; return 0; }
  done
  return 1
}

stop_cluster() {
  [ -f "$dir/env" ] && SLURM_CONF="$dir/slurm.conf" timeout 10 scancel --full --user=root >/dev/null 2>&1
  [ -f "$dir/pids" ] || return 0
  local pids=()
  while read -r name pid; do
    # Only a process that still runs the daemon we started (pids are reused).
    if [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] && grep -q "$name" <<<"$(tr '\0' ' ' < "/proc/$pid/cmdline")"; then
      kill -TERM "$pid" 2>/dev/null && pids+=("$pid")
    fi
  done < <(tac "$dir/pids")
  for _ in $(seq 1 100); do
    local alive=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ $alive -eq 0 ] && break
    sleep 0.1
  done
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null; done
  rm -f "$dir/pids"
  return 0
}

if [ "$action" = stop ]; then
  stop_cluster
  exit 0
fi
[ "$action" = start ] || usage

for cmd in munged mungekey slurmctld slurmd sinfo sbatch squeue scancel setpriv; do
  command -v "$cmd" >/dev/null 2>&1 || skip "'$cmd' not found (install the Debian packages slurm-wlm and munge)"
done
[ "$(id -u)" -eq 0 ] || skip "starting a Slurm cluster needs root"
id munge >/dev/null 2>&1 || skip "no 'munge' user (install the Debian package munge)"

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
host=$(hostname -s)
cpus=$(nproc)
[ "$cpus" -gt 2 ] && cpus=2

fail() {
  echo "slurm_cluster: $*" >&2
  for log in munged.log slurmctld.log slurmd.log; do
    [ -f "$dir/log/$log" ] && { echo "--- $log" >&2; tail -n 20 "$dir/log/$log" >&2; }
  done
  stop_cluster
  exit 1
}

# munge: its own key, socket, pid, seed and log, owned by the munge user
# (munged refuses files that others can write).
mkdir -p "$dir/munge" "$dir/log" "$dir/state" "$dir/spool"
chmod 755 "$dir" "$dir/log"
setpriv --reuid=munge --regid=munge --init-groups test -x "$dir" ||
  fail "the munge user cannot reach $dir (a parent directory is private: chmod a+x it)"
# Clients reach munged through the socket: the directory must be searchable.
chmod 711 "$dir/munge"
rm -f "$dir/munge/munge.key"
mungekey -c -k "$dir/munge/munge.key" || fail "mungekey failed"
chown -R munge:munge "$dir/munge"
touch "$dir/log/munged.log"
chown munge:munge "$dir/log/munged.log"
: > "$dir/pids"
setpriv --reuid=munge --regid=munge --init-groups \
  munged --foreground --key-file="$dir/munge/munge.key" --socket="$dir/munge/munge.socket" \
  --pid-file="$dir/munge/munged.pid" --seed-file="$dir/munge/munged.seed" --log-file="$dir/log/munged.log" \
  >> "$dir/log/munged.out" 2>&1 &
echo "munged $!" >> "$dir/pids"
for _ in $(seq 1 100); do [ -S "$dir/munge/munge.socket" ] && break; sleep 0.1; done
[ -S "$dir/munge/munge.socket" ] || fail "munged did not start"

ctld_port=$(pick_port) || fail "no free port"
slurmd_port=$((ctld_port + 1))
# Job ids from a random start: sgs derives a job's rendezvous port from its
# id, and two test clusters on one host (two build trees tested at once) would
# otherwise both run job 1 on the same port.
first_job_id=$(( (RANDOM * 32768 + RANDOM) % 1000000 + 1 ))
cat > "$dir/slurm.conf" <<EOF
ClusterName=sgs_test
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge/munge.socket
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
SchedulerParameters=sched_interval=1
MinJobAge=300
FirstJobId=$first_job_id
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
# Slurm from 24.05 sets up cgroups in slurmd even with the plugins above and
# fails where none are mounted (a chroot, many containers); it can be told not
# to. Older versions do not know "disabled" and need no cgroups here.
slurm_version=$(slurmd -V 2>/dev/null | awk '{print $2}')
if [ "$(printf '%s\n' 24.05 "$slurm_version" | sort -V | head -n 1)" = 24.05 ]; then
  echo "CgroupPlugin=disabled" > "$dir/cgroup.conf"
fi
export SLURM_CONF="$dir/slurm.conf"

setsid slurmctld -D -i -f "$dir/slurm.conf" >> "$dir/log/slurmctld.out" 2>&1 &
echo "slurmctld $!" >> "$dir/pids"
setsid slurmd -D -f "$dir/slurm.conf" -N "$host" >> "$dir/log/slurmd.out" 2>&1 &
echo "slurmd $!" >> "$dir/pids"

state=""
for _ in $(seq 1 300); do
  state=$(timeout 5 sinfo -h -N -o %t 2>/dev/null | head -n 1)
  [ "$state" = idle ] && break
  sleep 0.1
done
[ "$state" = idle ] || fail "the node did not become idle (sinfo: '${state}')"

echo "export SLURM_CONF=$dir/slurm.conf" > "$dir/env"
cat "$dir/env"
