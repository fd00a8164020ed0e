#!/usr/bin/env bash
# Stop exactly the daemons tests/slurm/start-slurm.sh started (PIDs recorded in
# $SLURM_STATE_DIR/pids/NAME.pid), newest first. Never kills by name; a PID whose process is not
# the recorded daemon any more (recycled PID) is left alone. Safe to run when nothing is up.
# Also removes the /etc/slurm/slurm.conf symlink start-slurm.sh made.
STATE=$(realpath -m "${SLURM_STATE_DIR:-/tmp/pcann-slurm}")
for name in slurmd slurmctld slurmdbd mariadbd munged; do
  f=$STATE/pids/$name.pid
  [ -f "$f" ] || continue
  pid=$(cat "$f")
  if [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$name" ]; then
    kill "$pid" 2>/dev/null
    for _ in $(seq 60); do [ -d "/proc/$pid" ] || break; sleep 0.25; done
    [ -d "/proc/$pid" ] && kill -9 "$pid" 2>/dev/null
  fi
  rm -f "$f"
done
# the /etc/slurm/slurm.conf link start-slurm.sh made (only if it still points into $STATE)
[ "$(readlink /etc/slurm/slurm.conf 2>/dev/null)" = "$STATE/etc/slurm.conf" ] && rm -f /etc/slurm/slurm.conf
exit 0
