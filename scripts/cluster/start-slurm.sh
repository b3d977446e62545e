#!/usr/bin/env bash
# Starts a one-node Slurm "cluster" on this machine for tests and local trials:
# slurmctld and slurmd in the background (no systemd), state, spool, logs and
# slurm.conf under one directory, no munge (auth/none, cred/none).
#
#   eval "$(scripts/cluster/start-slurm.sh)"   # prints `export SLURM_CONF=...`
#   srun -n 2 .build/debug/ecenet-dist selftest mpi
#   scripts/cluster/stop-slurm.sh
#
# Idempotent: a second call finds the daemons running and only waits for the
# node to be idle. Installs Debian's slurmctld/slurmd/slurm-client when missing
# (apt-get update only when the package is not found).
#
# Environment (all optional):
#   ECENET_SLURM_DIR    state directory            (default /tmp/ecenet-slurm)
#   ECENET_SLURM_CPUS   CPUs the node announces    (default 4; more than the
#                       machine's cores is fine: SlurmdParameters=config_overrides)
#   ECENET_SLURM_PORT   slurmctld port                      (default 6817)
#   ECENET_SLURM_SLURMD_PORT  slurmd port                   (default PORT+1)
#   ECENET_SLURM_WAIT   seconds to wait for the node to be idle (default 60)
#
# Exit status: 0 running, 2 Slurm is not installed and cannot be installed
# here, 1 anything else (the daemons did not come up: see the logs it prints).
# Not for production: auth/none lets any local user act as any user.
set -euo pipefail

DIR=${ECENET_SLURM_DIR:-/tmp/ecenet-slurm}
CPUS=${ECENET_SLURM_CPUS:-4}
PORT=${ECENET_SLURM_PORT:-6817}
SLURMD_PORT=${ECENET_SLURM_SLURMD_PORT:-$((PORT + 1))}
WAIT=${ECENET_SLURM_WAIT:-60}
NODE=$(hostname -s)
CONF=$DIR/slurm.conf
export SLURM_CONF=$CONF

log() { echo "start-slurm: $*" >&2; }

install_slurm() {
  local pkgs=(slurmctld slurmd slurm-client)
  if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sinfo >/dev/null; then
    return
  fi
  if [[ $(id -u) -ne 0 ]]; then
    log "Slurm is not installed and installing needs root: apt-get install ${pkgs[*]}"
    exit 2
  fi
  export DEBIAN_FRONTEND=noninteractive
  # Only refresh the package lists when apt does not know the package yet.
  if ! apt-cache show slurmctld >/dev/null 2>&1; then
    log "apt-get update"
    apt-get -o DPkg::Lock::Timeout=300 update -qq >&2 || { log "apt-get update failed"; exit 2; }
  fi
  log "installing ${pkgs[*]}"
  # Without an init system the packages' own services do not start (invoke-rc.d
  # refuses); this script starts its own daemons with its own config.
  apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${pkgs[@]}" >&2 ||
    { log "apt-get install ${pkgs[*]} failed"; exit 2; }
}

alive() { [[ -s $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

node_state() { sinfo -h -N -n "$NODE" -o %T 2>/dev/null | head -n1; }

wait_idle() {
  local deadline=$((SECONDS + WAIT)) state=""
  while ((SECONDS < deadline)); do
    state=$(node_state || true)
    # "idle", "mixed" and "allocated" all mean the node takes jobs.
    case $state in idle*|mixed*|allocated*) return 0 ;; esac
    sleep 0.5
  done
  log "node $NODE not idle after ${WAIT}s (state '${state}'); logs in $DIR"
  tail -n 20 "$DIR/slurmctld.log" "$DIR/slurmd.log" >&2 || true
  return 1
}

write_conf() {
  mkdir -p "$DIR/state" "$DIR/spool"
  rm -rf "$DIR/pmix"
  cat >"$CONF.tmp" <<CONF
# Written by scripts/cluster/start-slurm.sh: a one-node cluster on this machine.
ClusterName=ecenet
SlurmctldHost=$NODE(127.0.0.1)
SlurmctldPort=$PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=$(id -un)
SlurmdUser=root
AuthType=auth/none
CredType=cred/none
MpiDefault=pmix
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SwitchType=switch/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
ReturnToService=2
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/slurmctld.log
SlurmdLogFile=$DIR/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# Short timeouts: tests cancel and requeue jobs and should not wait minutes.
KillWait=5
MessageTimeout=10
SlurmdTimeout=60
InactiveLimit=0
MinJobAge=60
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$CPUS State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
CONF
  mv "$CONF.tmp" "$CONF"
  # Slurm reads mpi.conf beside slurm.conf. PMIx's per-step client directory
  # defaults to /tmp/spmix_appdir_<uid>_<job>.<step>: a step killed hard leaves
  # it behind, and since every fresh cluster numbers jobs from 1 again, the next
  # cluster's step 1.0 then fails to launch ("File exists"). Keep it in $DIR.
  mkdir -p "$DIR/pmix"
  printf '%s\n' "# Written by scripts/cluster/start-slurm.sh" "PMIxCliTmpDirBase=$DIR/pmix" >"$DIR/mpi.conf"
}

install_slurm
if alive "$DIR/slurmctld.pid" && alive "$DIR/slurmd.pid"; then
  log "already running in $DIR"
else
  # A half-started cluster (one daemon died): stop what is left and start clean.
  if [[ -x $(dirname "$0")/stop-slurm.sh ]]; then ECENET_SLURM_DIR=$DIR "$(dirname "$0")/stop-slurm.sh" >/dev/null 2>&1 || true; fi
  write_conf
  # -D keeps each daemon in the foreground so its pid is ours; setsid detaches it
  # from the caller's terminal and process group; no fd of the caller stays open
  # (a test reading our output must see EOF when this script exits).
  # -c starts slurmctld with empty state: every start is a fresh test cluster.
  setsid slurmctld -D -c -f "$CONF" </dev/null >>"$DIR/slurmctld.out" 2>&1 &
  echo $! >"$DIR/slurmctld.pid"
  setsid slurmd -D -f "$CONF" -N "$NODE" </dev/null >>"$DIR/slurmd.out" 2>&1 &
  echo $! >"$DIR/slurmd.pid"
  log "started slurmctld ($(cat "$DIR/slurmctld.pid")) and slurmd ($(cat "$DIR/slurmd.pid")) in $DIR"
fi
wait_idle
echo "export SLURM_CONF=$CONF"
