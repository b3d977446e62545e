#!/usr/bin/env bash
# Stops the cluster that start-slurm.sh started: cancels its jobs, then ends
# slurmd and slurmctld by the pids recorded in $ECENET_SLURM_DIR, and any
# slurmstepd of those jobs that is still left. Safe to call when nothing runs.
set -uo pipefail

DIR=${ECENET_SLURM_DIR:-/tmp/ecenet-slurm}
export SLURM_CONF=$DIR/slurm.conf

alive() { [[ -n $1 ]] && kill -0 "$1" 2>/dev/null; }
pid_of() { [[ -s $DIR/$1.pid ]] && cat "$DIR/$1.pid" || true; }

# Ends pids with TERM, then KILL after $2 seconds.
end_pids() {
  local pids=$1 wait=$2 p deadline
  [[ -z ${pids// /} ]] && return
  kill -TERM $pids 2>/dev/null || true
  deadline=$((SECONDS + wait))
  while ((SECONDS < deadline)); do
    local left=""
    for p in $pids; do alive "$p" && left+=" $p"; done
    [[ -z $left ]] && return
    sleep 0.2
  done
  kill -KILL $pids 2>/dev/null || true
}

# Job step daemons of this cluster: slurmstepd processes with a socket or file
# open under our spool directory.
stepds() {
  local p
  for p in $(pgrep -x slurmstepd 2>/dev/null); do
    if ls -l "/proc/$p/fd" 2>/dev/null | grep -q -- "$DIR/"; then echo "$p"; fi
  done
  for p in $(pgrep -f '^slurmstepd' 2>/dev/null); do
    if ls -l "/proc/$p/fd" 2>/dev/null | grep -q -- "$DIR/"; then echo "$p"; fi
  done | sort -u
}

ctld=$(pid_of slurmctld)
slurmd=$(pid_of slurmd)
if [[ -f $SLURM_CONF ]] && alive "$ctld" && command -v scancel >/dev/null; then
  # Cancel every job and give the steps a moment to end cleanly.
  scancel --full --quiet --state=PENDING 2>/dev/null || true
  scancel --full --quiet 2>/dev/null || true
  deadline=$((SECONDS + 15))
  while ((SECONDS < deadline)) && [[ -n $(squeue -h -o %i 2>/dev/null) ]]; do sleep 0.3; done
fi
end_pids "$slurmd" 10
end_pids "$ctld" 10
end_pids "$(stepds | tr '\n' ' ')" 5
rm -f "$DIR/slurmctld.pid" "$DIR/slurmd.pid"
echo "stop-slurm: stopped ($DIR)"
