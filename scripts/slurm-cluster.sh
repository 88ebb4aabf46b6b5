#!/usr/bin/env bash
# A real one-node Slurm cluster on this machine, for the Slurm tests (tests/slurm) and for trying
# launch/slurm.sbatch by hand: Debian's munged, slurmctld and slurmd run as background processes
# whose configuration, keys, state, sockets, logs and pid files all live in one private folder.
# Nothing under /etc is changed and no system service is started or stopped.
#
#   bash scripts/slurm-cluster.sh start [DIR]   # install (if missing), configure, start, wait for the node
#   export SLURM_CONF=DIR/slurm.conf            # then sbatch, srun, squeue, scontrol, scancel use it
#   bash scripts/slurm-cluster.sh status [DIR]
#   bash scripts/slurm-cluster.sh stop [DIR]    # stops the three daemons by their pids
#
# DIR defaults to $DNE_SLURM_DIR or /tmp/dne-slurm. The node is this host as `slurmd -C` sees it
# (its CPUs and memory); proctrack/linuxproc and task/affinity (CPU binding with
# sched_setaffinity), so no cgroups are needed. Ports come from DNE_SLURM_PORT (slurmctld;
# slurmd uses the next one), default 6817. Finished jobs' states: DIR/jobcomp.txt.
#
# Root only: slurmd starts every job step as the submitting user, which needs root, and munged's
# key must belong to the user the daemons run as. As another user this prints why and exits 77
# (the code ctest reads as "skipped").
set -euo pipefail
cd "$(dirname "$0")/.."

action=${1:?usage: scripts/slurm-cluster.sh start|stop|status [DIR]}
dir=${2:-${DNE_SLURM_DIR:-/tmp/dne-slurm}}
port=${DNE_SLURM_PORT:-6817}
conf="$dir/slurm.conf"

say() { echo "slurm-cluster: $*"; }

stop_pid_file() {  # stop_pid_file NAME FILE: TERM, then KILL after 10 s
  local name=$1 file=$2 pid
  [ -f "$file" ] || return 0
  pid=$(cat "$file")
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    say "stopped $name (pid $pid)"
  fi
  rm -f "$file"
}

node_state() { SLURM_CONF=$conf sinfo -h -N -o '%T' 2>/dev/null | head -1; }

case "$action" in
  stop)
    stop_pid_file slurmd "$dir/slurmd.pid"
    stop_pid_file slurmctld "$dir/slurmctld.pid"
    stop_pid_file munged "$dir/munged.pid"
    exit 0
    ;;
  status)
    for d in munged slurmctld slurmd; do
      if [ -f "$dir/$d.pid" ] && kill -0 "$(cat "$dir/$d.pid")" 2>/dev/null; then say "$d running (pid $(cat "$dir/$d.pid"))"
      else say "$d not running"; fi
    done
    say "node: $(node_state || true)"
    exit 0
    ;;
  start) ;;
  *) echo "usage: scripts/slurm-cluster.sh start|stop|status [DIR]" >&2; exit 2 ;;
esac

if [ "$(id -u)" -ne 0 ]; then
  say "skipped: a private Slurm cluster needs root (slurmd starts job steps as the submitting user)"
  exit 77
fi
if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  say "installing slurm-wlm and munge"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
fi

"$0" stop "$dir" >/dev/null  # a previous cluster in this folder
mkdir -p "$dir/state" "$dir/spool"
chmod 700 "$dir"

# munge: a fresh key and a private socket.
if [ ! -s "$dir/munge.key" ]; then
  dd if=/dev/urandom of="$dir/munge.key" bs=1024 count=1 status=none
  chmod 400 "$dir/munge.key"
fi
munged --key-file="$dir/munge.key" --socket="$dir/munge.socket" --pid-file="$dir/munged.pid" \
  --log-file="$dir/munged.log" --seed-file="$dir/munge.seed" --force

# This host as slurmd sees it: "NodeName=vm CPUs=2 Boards=1 ... RealMemory=24105".
node_line=$(slurmd -C | head -1)
node=$(echo "$node_line" | sed -n 's/^NodeName=\([^ ]*\).*/\1/p')
cat >"$conf" <<EOF
# Written by scripts/slurm-cluster.sh: one node, private folder $dir.
ClusterName=dnetest
SlurmctldHost=$node
SlurmUser=root
SlurmdUser=root
SlurmctldPort=$port
SlurmdPort=$((port + 1))
AuthType=auth/munge
AuthInfo=socket=$dir/munge.socket
CredType=cred/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
PlugStackConfig=$dir/plugstack.conf
ProctrackType=proctrack/linuxproc
TaskPlugin=task/affinity
SwitchType=switch/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
# A job past its --time gets SIGTERM on every step's tasks, then SIGKILL KillWait seconds later.
KillWait=30
OverTimeLimit=0
MinJobAge=600
InactiveLimit=0
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
# Each finished job's final state (COMPLETED, TIMEOUT, CANCELLED, FAILED) and exit code, one line
# per job: the record sacct would give without a slurmdbd.
JobCompType=jobcomp/filetxt
JobCompLoc=$dir/jobcomp.txt
$node_line
PartitionName=debug Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF
: >"$dir/plugstack.conf"

export SLURM_CONF=$conf
slurmctld -f "$conf"
slurmd -f "$conf"
for _ in $(seq 120); do
  state=$(node_state || true)
  case "$state" in
    idle) say "node $node idle; export SLURM_CONF=$conf"; exit 0 ;;
  esac
  sleep 0.5
done
say "the node did not become idle in 60 s (state '${state:-none}'); logs in $dir" >&2
tail -n 20 "$dir/slurmctld.log" "$dir/slurmd.log" >&2 || true
"$0" stop "$dir"
exit 1
