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
  for p in $(pgrep slurmstepd 2>/dev/null); do
    if ls -l "/proc/$p/fd" 2>/dev/null | grep -q -- "$DIR/"; then echo "$p"; fi
  done
}

# Processes of jobs of this cluster that outlived their slurmstepd: they carry
# SLURM_JOB_ID and this cluster's SLURM_CONF in their environment (sbatch and
# srun export the submitter's environment by default).
job_procs() {
  local p env
  for p in $(ls /proc | grep -E '^[0-9]+$'); do
    [[ $p == "$$" ]] && continue
    env=$( { tr '\0' '\n' <"/proc/$p/environ"; } 2>/dev/null) || continue
    grep -qx "SLURM_CONF=$SLURM_CONF" <<<"$env" && grep -q '^SLURM_JOB_ID=' <<<"$env" && echo "$p"
  done
}

ctld=$(pid_of slurmctld)
slurmd=$(pid_of slurmd)
if [[ -f $SLURM_CONF ]] && alive "$ctld" && command -v scancel >/dev/null; then
  # Cancel every job (scancel needs the ids) and let slurmd end the steps:
  # SIGTERM, then SIGKILL after KillWait.
  jobs=$(timeout 20 squeue -h -o %i 2>/dev/null | tr '\n' ' ')
  if [[ -n ${jobs// /} ]]; then
    timeout 20 scancel --quiet $jobs 2>/dev/null || true
    deadline=$((SECONDS + 20))
    while ((SECONDS < deadline)); do
      [[ -z $(timeout 10 squeue -h -o %i 2>/dev/null) && -z $(stepds) ]] && break
      sleep 0.3
    done
  fi
fi
end_pids "$slurmd" 10
end_pids "$ctld" 10
end_pids "$(stepds | tr '\n' ' ')" 5
end_pids "$(job_procs | tr '\n' ' ')" 5
rm -f "$DIR/slurmctld.pid" "$DIR/slurmd.pid"
echo "stop-slurm: stopped ($DIR)"
