#!/usr/bin/env bash
# A throw-away one-node Slurm cluster on 127.0.0.1 (Debian's slurm-wlm + munge), for trying datatrove's
# SlurmPipelineExecutor without a real cluster.
#
#   scripts/slurm-local.sh start    install (if missing), configure, start munged + slurmctld + slurmd, wait until
#                                   the node is idle; prints `export SLURM_CONF=…` on stdout (eval it: the client
#                                   commands sbatch/sinfo/squeue/srun need it, and jobs inherit it)
#   scripts/slurm-local.sh stop     cancel remaining jobs, stop the three daemons (by their pid files)
#   scripts/slurm-local.sh status   exit 0 when all three daemons run
#
# Everything (config, munge key and socket, state, spool, logs, pid files) lives under $SLURM_LOCAL_DIR (default
# /tmp/lmpipe-slurm); nothing under /etc is written and the system's munge/slurm services are not used.
# Ports: $SLURM_LOCAL_CTLD_PORT (6817) and $SLURM_LOCAL_SLURMD_PORT (6818).
# The node is `hostname -s` with NodeAddr=127.0.0.1, its CPUs/RealMemory as `slurmd -C` reports them, in one default
# partition `debug`; select/cons_tres + CR_CPU (jobs share the node per CPU, memory is not a consumable),
# proctrack/linuxproc and task/none (no cgroups needed), no accounting.
# Must run as root (slurmd has to). Exit codes: 0 ok, 3 Slurm/munge missing and cannot be installed here,
# 1 other failure (the reason is printed on one line on stderr, log tails follow).
set -euo pipefail

cmd=${1:-start}
dir=${SLURM_LOCAL_DIR:-/tmp/lmpipe-slurm}
ctld_port=${SLURM_LOCAL_CTLD_PORT:-6817}
slurmd_port=${SLURM_LOCAL_SLURMD_PORT:-6818}
conf=$dir/etc/slurm.conf
munge_sock=$dir/munge/munge.socket.2
export SLURM_CONF=$conf

die() { echo "slurm-local: $1" >&2; exit "${2:-1}"; }

# pid from a pid file when that process is alive and runs the expected program (a stale file reads as not running)
running_pid() {  # PIDFILE PROGRAM
    local pid
    [ -s "$1" ] || return 1
    pid=$(tr -dc 0-9 <"$1")
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
    # Debian installs the daemons as alternatives: /usr/sbin/slurmctld -> slurmctld-wlm
    case "$(basename "$(readlink "/proc/$pid/exe" 2>/dev/null || echo ?)")" in
        "$2"|"$2"-*) echo "$pid" ;;
        *) return 1 ;;
    esac
}

stop_pid() {  # PIDFILE PROGRAM: SIGTERM, wait up to 20 s, then SIGKILL
    local pid i
    pid=$(running_pid "$1" "$2") || { rm -f "$1"; return 0; }
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 40); do
        kill -0 "$pid" 2>/dev/null || { rm -f "$1"; return 0; }
        sleep 0.5
    done
    echo "slurm-local: $2 (pid $pid) ignored SIGTERM; killing it" >&2
    kill -KILL "$pid" 2>/dev/null || true
    rm -f "$1"
}

logtail() { [ -f "$1" ] && { echo "--- tail $1" >&2; tail -n 15 "$1" >&2; } || true; }

case "$cmd" in
stop)
    [ -d "$dir" ] || exit 0
    if running_pid "$dir/run/slurmctld.pid" slurmctld >/dev/null; then
        # Jobs are not ended by stopping slurmd (their slurmstepd lives on): cancel them first, give them 30 s.
        jobs=$(squeue -h -o %A 2>/dev/null || true)
        if [ -n "$jobs" ]; then
            # shellcheck disable=SC2086
            scancel $jobs 2>/dev/null || true
            for _ in $(seq 1 60); do
                [ -z "$(squeue -h -o %A 2>/dev/null || true)" ] && break
                sleep 0.5
            done
        fi
    fi
    stop_pid "$dir/run/slurmd.pid" slurmd
    stop_pid "$dir/run/slurmctld.pid" slurmctld
    stop_pid "$dir/run/munged.pid" munged
    exit 0
    ;;
status)
    running_pid "$dir/run/munged.pid" munged >/dev/null &&
    running_pid "$dir/run/slurmctld.pid" slurmctld >/dev/null &&
    running_pid "$dir/run/slurmd.pid" slurmd >/dev/null || exit 1
    sinfo -h -o '%N %t %c CPUs' 2>/dev/null || exit 1
    exit 0
    ;;
start) ;;
*) die "usage: $0 start|stop|status" ;;
esac

# ---- start ----------------------------------------------------------------------------------------------------
[ "$(id -u)" -eq 0 ] || die "must run as root (slurmd needs root to start jobs as their user)"

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v sbatch >/dev/null ||
   ! command -v munged >/dev/null; then
    command -v apt-get >/dev/null || die "slurm-wlm/munge missing and no apt-get to install them" 3
    echo "slurm-local: installing Debian's slurm-wlm and munge" >&2
    # policy-rc.d: keep the packages' own services from starting (we run our own daemons)
    policy_created=
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && policy_created=1
    fi
    rc=0
    { DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends slurm-wlm munge >&2 ||
      { apt-get update -q >&2 &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends slurm-wlm munge >&2; }; } || rc=$?
    [ -n "$policy_created" ] && rm -f /usr/sbin/policy-rc.d
    [ "$rc" -eq 0 ] || die "apt-get install slurm-wlm munge failed (no package mirror reachable?)" 3
    command -v slurmctld >/dev/null && command -v munged >/dev/null || die "slurm-wlm installed but binaries not found" 3
fi

[ ${#munge_sock} -lt 100 ] || die "SLURM_LOCAL_DIR too long for a unix socket path: $munge_sock"
mkdir -p "$dir"/{etc,munge,run,log,state/ctld,state/d}
chmod 755 "$dir" "$dir/etc" "$dir/run" "$dir/log"
chmod 711 "$dir/munge"  # clients need x to reach the socket; the key itself is 600
chmod 700 "$dir/state/ctld" "$dir/state/d"

# munge key: 1024 random bytes, owner-only
if [ ! -s "$dir/munge/munge.key" ]; then
    (umask 077; dd if=/dev/urandom of="$dir/munge/munge.key.tmp" bs=1024 count=1 status=none)
    mv "$dir/munge/munge.key.tmp" "$dir/munge/munge.key"
fi
chmod 600 "$dir/munge/munge.key"

# ---- slurm.conf: the node as slurmd itself sees it (slurmd drains a node configured with more than it has) ----
host=$(hostname -s 2>/dev/null || hostname)
[ -n "$host" ] || host=localhost
hw=$(slurmd -C 2>/dev/null | head -n 1) || true
cpus=$(sed -n 's/.* CPUs=\([0-9]*\).*/\1/p' <<<"$hw")
mem=$(sed -n 's/.* RealMemory=\([0-9]*\).*/\1/p' <<<"$hw")
[ -n "$cpus" ] || cpus=$(nproc)
[ -n "$mem" ] || mem=$(awk '/^MemTotal:/ {print int($2/1024)}' /proc/meminfo)
topo=$(grep -o 'Boards=[0-9]* SocketsPerBoard=[0-9]* CoresPerSocket=[0-9]* ThreadsPerCore=[0-9]*' <<<"$hw" || true)

conf_new=$(cat <<EOF
# written by scripts/slurm-local.sh; one node on 127.0.0.1, everything under $dir
ClusterName=lmpipe
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$munge_sock
StateSaveLocation=$dir/state/ctld
SlurmdSpoolDir=$dir/state/d
SlurmctldPidFile=$dir/run/slurmctld.pid
SlurmdPidFile=$dir/run/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
# cancel jobs whose dependency failed (datatrove's merge_stats job is afterok:<array>; it would pend forever)
DependencyParameters=kill_invalid_depend
SlurmctldTimeout=30
SlurmdTimeout=60
InactiveLimit=0
MinJobAge=300
KillWait=10
Waittime=0
MailProg=/bin/true
NodeName=$host NodeAddr=127.0.0.1 NodeHostname=$host CPUs=$cpus ${topo} RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF
)
if [ ! -f "$conf" ] || [ "$(cat "$conf")" != "$conf_new" ]; then
    if running_pid "$dir/run/slurmctld.pid" slurmctld >/dev/null || running_pid "$dir/run/slurmd.pid" slurmd >/dev/null; then
        die "$conf would change while the daemons run; run '$0 stop' first"
    fi
    printf '%s\n' "$conf_new" >"$conf"
fi

# ---- daemons ----------------------------------------------------------------------------------------------------
if ! running_pid "$dir/run/munged.pid" munged >/dev/null; then
    rm -f "$munge_sock" "$munge_sock.lock"
    munged --force --socket="$munge_sock" --key-file="$dir/munge/munge.key" --pid-file="$dir/run/munged.pid" \
        --log-file="$dir/log/munged.log" --seed-file="$dir/munge/munged.seed" ||
        { logtail "$dir/log/munged.log"; die "munged failed to start"; }
fi
for _ in $(seq 1 20); do [ -S "$munge_sock" ] && break; sleep 0.25; done
munge -n -S "$munge_sock" | unmunge -S "$munge_sock" >/dev/null 2>&1 ||
    { logtail "$dir/log/munged.log"; die "munge credential round-trip failed on $munge_sock"; }

if ! running_pid "$dir/run/slurmctld.pid" slurmctld >/dev/null; then
    slurmctld -f "$conf" || { logtail "$dir/log/slurmctld.log"; die "slurmctld failed to start"; }
fi
slurmd_t0=0
if ! running_pid "$dir/run/slurmd.pid" slurmd >/dev/null; then
    slurmd_t0=$(date +%s)
    slurmd -f "$conf" -N "$host" || { logtail "$dir/log/slurmd.log"; die "slurmd failed to start"; }
fi

# ---- wait until the node takes jobs -----------------------------------------------------------------------------
state=
for _ in $(seq 1 120); do
    state=$(sinfo -h -n "$host" -o %t 2>/dev/null | head -n 1 || true)
    if [ "$slurmd_t0" -gt 0 ]; then
        # after a restart slurmctld reports the node's saved state at once: wait for the new slurmd to register
        sst=$(scontrol show node "$host" 2>/dev/null | sed -n 's/.*SlurmdStartTime=\([0-9T:-]*\).*/\1/p')
        sst=$(date -d "$sst" +%s 2>/dev/null || echo 0)
        [ "$sst" -ge $((slurmd_t0 - 1)) ] || { state="not registered: ${state}"; sleep 0.5; continue; }
    fi
    case "$state" in
        idle|mix|alloc|comp) break ;;
        drain*|drng|down*|fail*)
            # left over from an earlier run (e.g. a killed slurmd): bring it back once
            scontrol update NodeName="$host" State=RESUME >/dev/null 2>&1 || true ;;
    esac
    sleep 0.5
done
case "$state" in
    idle|mix|alloc|comp) ;;
    *)
        logtail "$dir/log/slurmctld.log"; logtail "$dir/log/slurmd.log"
        reason=$(sinfo -h -n "$host" -o %E 2>/dev/null || true)
        die "node $host not ready after 60 s (state '${state:-no answer from slurmctld}'${reason:+, reason: $reason})" ;;
esac
echo "slurm-local: node $host ${state}, ${cpus} CPUs, ${mem} MB, partition debug; conf $conf" >&2
echo "export SLURM_CONF=$conf"
