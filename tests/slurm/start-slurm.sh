#!/usr/bin/env bash
# A real single-node Slurm on localhost, for tests/test_slurm.py and CI: root, Debian 12 packages
# (slurmctld/slurmd/slurm-client 22.05 + munge), no systemd, no cgroups.
# Adapted from a measured reference setup; the project carries its own copy (CI needs nothing else).
#
#   sudo tests/slurm/start-slurm.sh      # install what is missing, write the config, start the daemons
#   sinfo; snakemake --workflow-profile profiles/slurm --slurm-init-seconds-before-status-checks 2
#   sudo tests/slurm/stop-slurm.sh       # stop exactly the daemons started here (recorded PIDs)
#
# Kept apart from the host: everything (slurm.conf, munge key and socket, state, logs, PIDs)
# lives under $SLURM_STATE_DIR, and the host's /etc/munge and munged (if any) are left alone.
# The one thing outside it: /etc/slurm/slurm.conf is made a symlink to $SLURM_STATE_DIR/etc/
# slurm.conf (removed again by stop-slurm.sh), because Slurm clients inside jobs must find the
# config at its default path: the Snakemake job step (snakemake-executor-plugin-slurm-jobstep
# 0.6.1) drops SLURM_CONF from the environment of its nested `srun`. A real /etc/slurm/slurm.conf
# (a file, or a link elsewhere) is never replaced: the script then stops with status 77.
#
# Idempotent: installs missing packages, stops the daemons a previous run started (by recorded
# PID), rewrites the config and starts them again. Measured on 2 cores: 2 s when installed,
# +10 s to install the packages. SLURM_ACCOUNTING=1 also runs MariaDB (on 127.0.0.1:
# $SLURM_DB_PORT) + slurmdbd so that `sacct` works as on most production clusters: 7.5 s to
# start, but installing slurmdbd + mariadb-server took nearly 5 minutes on a busy 2-core machine.
# Exit status: 0 = up; 77 = cannot run here (not root, no apt-get, not Debian-like: a reason to
# skip); anything else = a real failure (the daemon's log tail is printed).
set -euo pipefail
STATE=$(realpath -m "${SLURM_STATE_DIR:-/tmp/pcann-slurm}")
ACCT=${SLURM_ACCOUNTING:-0}
DB_PORT=${SLURM_DB_PORT:-13306}
HERE=$(cd "$(dirname "$0")" && pwd)
[ "$STATE" != / ] || { echo "start-slurm.sh: SLURM_STATE_DIR must not be /" >&2; exit 2; }

cannot() { echo "start-slurm.sh: cannot run a local Slurm here: $*" >&2; exit 77; }
[ "$(id -u)" = 0 ] || cannot "needs root (daemons, packages, job users)"
[ "$(uname -s)" = Linux ] || cannot "needs Linux"

pkgs=(munge slurmctld slurmd slurm-client)
[ "$ACCT" = 1 ] && pkgs+=(slurmdbd mariadb-server)
missing=()
for p in "${pkgs[@]}"; do
  [ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null)" = installed ] || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  command -v apt-get >/dev/null || cannot "packages missing (${missing[*]}) and no apt-get"
  # keep the packages' postinst scripts from starting daemons through /etc/init.d
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  echo "start-slurm.sh: installing ${missing[*]}" >&2
  apt-get update -qq || cannot "apt-get update failed (offline?)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}" \
    >"${TMPDIR:-/tmp}/pcann-slurm-apt.log" 2>&1 \
    || { tail -20 "${TMPDIR:-/tmp}/pcann-slurm-apt.log" >&2; cannot "apt-get install ${missing[*]} failed"; }
fi
id slurm >/dev/null 2>&1 && id munge >/dev/null 2>&1 || cannot "users slurm/munge missing after install"

CONF=$STATE/etc/slurm.conf
SYS_CONF=/etc/slurm/slurm.conf
if [ -e "$SYS_CONF" ] || [ -L "$SYS_CONF" ]; then
  [ "$(readlink "$SYS_CONF" 2>/dev/null)" = "$CONF" ] \
    || cannot "$SYS_CONF already exists (a real Slurm on this host?); not replacing it"
fi

bash "$HERE/stop-slurm.sh"
rm -rf "$STATE/ctld" "$STATE/spool" "$STATE/log"
mkdir -p "$STATE"/{pids,run,log,ctld,spool,etc,munge}
chmod 755 "$STATE" "$STATE/etc"
chown slurm:slurm "$STATE/ctld"
# munged insists that its key is private and its socket directory is not writable by others
chown munge:munge "$STATE/munge"; chmod 755 "$STATE/munge"
KEY=$STATE/munge/munge.key
SOCK=$STATE/munge/munge.socket
if [ ! -s "$KEY" ]; then
  dd if=/dev/urandom of="$KEY" bs=1024 count=1 status=none
fi
chown munge:munge "$KEY"; chmod 400 "$KEY"

# this machine's real CPUs/sockets/memory (RealMemory is required: without it jobs asking for
# --mem never start), under the node name "localhost"
node=$(slurmd -C | head -1 | sed 's/^NodeName=[^ ]*/NodeName=localhost/')
export SLURM_CONF=$CONF  # for the daemons (slurmdbd finds slurmdbd.conf next to it)
cat >"$CONF" <<EOF
# written by tests/slurm/start-slurm.sh: a single-node test cluster on localhost
ClusterName=pcann
SlurmctldHost=localhost
SlurmUser=slurm
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$SOCK
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/run/slurmctld.pid
SlurmdPidFile=$STATE/run/slurmd.pid
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
# with accounting, the CPU time of every job step from /proc (sacct's TotalCPU; no cgroups here)
JobAcctGatherType=jobacct_gather/$([ "$ACCT" = 1 ] && echo linux || echo none)
AccountingStorageType=accounting_storage/$([ "$ACCT" = 1 ] && echo slurmdbd || echo none)
# the munge socket for connections to slurmdbd (sacct, sacctmgr, slurmctld)
AccountingStoragePass=$SOCK
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
MpiDefault=none
MailProg=/bin/true
# finished jobs stay visible to squeue for 5 minutes (the Slurm default, stated explicitly):
# the status command of profiles/slurm (squeue) relies on it
MinJobAge=300
# a killed or cancelled job is reported at once, not after the default 30 s grace period
KillWait=2
$node State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
# a second, non-default partition: tests check that slurm_partition reaches sbatch, and that
# jobs over its limits stop the run (Slurm would leave them pending: EnforcePartLimits=NO)
PartitionName=short Nodes=ALL Default=NO MaxTime=60 MaxMemPerNode=4000 State=UP
# a 4-hour partition: the Fruits-360-sized study must plan for it with no other flag (issue #23)
PartitionName=long Nodes=ALL Default=NO MaxTime=240 State=UP
EOF
chmod 644 "$CONF"
mkdir -p /etc/slurm
ln -sfn "$CONF" "$SYS_CONF"

start() {  # NAME CMD... : run CMD in the foreground in its own session; record its PID
  local name=$1; shift
  setsid "$@" >"$STATE/log/$name.log" 2>&1 </dev/null &
  echo $! >"$STATE/pids/$name.pid"
}
wait_for() {  # NAME CMD... : poll CMD for up to 30 s
  local name=$1; shift
  for _ in $(seq 120); do "$@" >/dev/null 2>&1 && return 0; sleep 0.25; done
  echo "start-slurm.sh: $name did not come up; its log:" >&2
  tail -20 "$STATE/log/$name.log" >&2; exit 1
}

start munged setpriv --reuid=munge --regid=munge --init-groups /usr/sbin/munged --foreground \
  --socket="$SOCK" --key-file="$KEY" --pid-file="$STATE/munge/munged.pid" \
  --log-file="$STATE/munge/munged.log" --seed-file="$STATE/munge/munged.seed"
wait_for munged sh -c "munge -S '$SOCK' -n | unmunge -S '$SOCK'"

if [ "$ACCT" = 1 ]; then
  DB=$STATE/mysql
  if [ ! -d "$DB/mysql" ]; then
    mkdir -p "$DB"; chown mysql:mysql "$DB"
    mariadb-install-db --user=mysql --datadir="$DB" --auth-root-authentication-method=normal \
      >"$STATE/log/mariadb-install-db.log" 2>&1
  fi
  start mariadbd /usr/sbin/mariadbd --user=mysql --datadir="$DB" --socket="$DB/mysqld.sock" \
    --pid-file="$DB/mysqld.pid" --bind-address=127.0.0.1 --port="$DB_PORT" --skip-name-resolve
  wait_for mariadbd mariadb --socket="$DB/mysqld.sock" -e 'select 1'
  # a fresh accounting database each time, like the fresh slurmctld state (job ids restart at 1)
  mariadb --socket="$DB/mysqld.sock" -e "
    DROP DATABASE IF EXISTS slurm_acct_db;
    CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurm';
    GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';"
  cat >"$STATE/etc/slurmdbd.conf" <<EOF
AuthType=auth/munge
AuthInfo=socket=$SOCK
DbdHost=localhost
SlurmUser=slurm
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=slurm
StorageLoc=slurm_acct_db
PidFile=$STATE/run/slurmdbd.pid
EOF
  chown slurm:slurm "$STATE/etc/slurmdbd.conf"; chmod 600 "$STATE/etc/slurmdbd.conf"  # slurmdbd insists
  start slurmdbd /usr/sbin/slurmdbd -D
  wait_for slurmdbd sacctmgr -n list cluster
fi

start slurmctld /usr/sbin/slurmctld -D -i
wait_for slurmctld sinfo
start slurmd /usr/sbin/slurmd -D -N localhost
wait_for slurmd sh -c 'sinfo -h -n localhost -o %t | grep -qE "^(idle|mix|alloc)$"'
echo "start-slurm.sh: up ($SYS_CONF -> $CONF; stop with stop-slurm.sh)" >&2
sinfo
