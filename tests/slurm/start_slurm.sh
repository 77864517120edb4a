#!/usr/bin/env bash
# start_slurm.sh - bring up a real single-node SLURM (munged + slurmctld + slurmd) on this host for
# the `slurm` tests: no systemd, no cgroups, no accounting, fake GPU GRES. Must run as root.
# Idempotent: installs Debian's packages when missing; exits at once when the cluster it started
# earlier is still healthy; otherwise stops its own leftovers (pid files), rewrites the config,
# starts the daemons on a clean state and waits until the node is idle and `srun true` works.
#
# Environment:
#   FERXAI_SLURM_BASE       state/log/pid folder                   (default /tmp/ferxai-slurm)
#   FERXAI_SLURM_FAKE_GPUS  fake "gpu" GRES on the node, 0 = none   (default 2)
#   FERXAI_SLURM_PARTITION  partition name                         (default debug)
#   FERXAI_SLURM_CTLD_PORT / FERXAI_SLURM_SLURMD_PORT              (default 6817 / 6818)
#   FERXAI_SLURM_TIMEOUT    seconds to wait for the node to be idle (default 60)
#
# Pitfalls this script handles (see docs/hpc.md):
# - No accounting: `sacct` fails, so the Snakemake profile must use `slurm-status-command: squeue`,
#   and finished jobs must stay visible to squeue long enough (MinJobAge=300).
# - The job step strips every SLURM_* variable (SLURM_CONF too) before `srun`, so the config must
#   be at the compiled-in path /etc/slurm/slurm.conf: it is symlinked there (an existing real file
#   is moved aside to *.pre-ferxai-test and put back by `stop_slurm.sh --purge`).
# - Fake GPUs are /dev/null-like device nodes: `--gpus=1` jobs are scheduled and really run, and
#   slurmd sets CUDA_VISIBLE_DEVICES for them (torch still sees no CUDA and falls back to CPU).
set -euo pipefail

BASE=${FERXAI_SLURM_BASE:-/tmp/ferxai-slurm}
FAKE_GPUS=${FERXAI_SLURM_FAKE_GPUS:-2}
PARTITION=${FERXAI_SLURM_PARTITION:-debug}
CTLD_PORT=${FERXAI_SLURM_CTLD_PORT:-6817}
SLURMD_PORT=${FERXAI_SLURM_SLURMD_PORT:-6818}
TIMEOUT=${FERXAI_SLURM_TIMEOUT:-60}
ETC=/etc/slurm
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

log() { echo "[start_slurm] $*" >&2; }
trap 'log "FAILED (rc=$?) at line $LINENO: $BASH_COMMAND"' ERR
die() { log "ERROR: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (it installs packages and starts daemons)"

# pid_alive NAME: $BASE/run/NAME.pid names a live, non-zombie process called NAME (guards against
# stale pid files and pid reuse).
pid_alive() {
    local name=$1 f="$BASE/run/$1.pid" pid state
    [ -s "$f" ] || return 1
    pid=$(tr -dc 0-9 <"$f"); [ -n "$pid" ] && [ -r "/proc/$pid/stat" ] || return 1
    state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) || return 1
    [ "$state" != Z ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$name" ]
}

wait_for() {  # wait_for SECONDS DESCRIPTION CMD...
    local end=$(( $(date +%s) + $1 )) what=$2; shift 2
    until "$@" >/dev/null 2>&1; do
        [ "$(date +%s)" -lt "$end" ] || { log "timeout waiting for $what"; return 1; }
        sleep 0.2
    done
}

node_state() { sinfo -h -N -n "$NODE" -o '%T' 2>/dev/null | head -1; }

dump_logs() {
    for f in "$BASE"/log/*.log; do
        [ -f "$f" ] || continue
        log "---- tail $f"; tail -n 20 "$f" >&2 || true
    done
}

# ------------------------------------------------------------------------------------ packages
need_pkgs=()
command -v slurmctld >/dev/null || need_pkgs+=(slurmctld)
command -v slurmd >/dev/null || need_pkgs+=(slurmd)
command -v sbatch >/dev/null || need_pkgs+=(slurm-client)
command -v munged >/dev/null || need_pkgs+=(munge)
if [ ${#need_pkgs[@]} -gt 0 ]; then
    command -v apt-get >/dev/null || die "missing ${need_pkgs[*]} and no apt-get to install them"
    log "installing ${need_pkgs[*]}"
    # keep the packages' maintainer scripts from starting daemons this script would not own
    made_policy=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d
        made_policy=1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
    [ "$made_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d
fi

# ---------------------------------------------------------------------------------- node facts
NODE=$(hostname -s)
# e.g. "NodeName=vm CPUs=2 Boards=1 SocketsPerBoard=1 CoresPerSocket=2 ThreadsPerCore=1 RealMemory=24105"
HW=$(slurmd -C | head -1)
hw() { sed -n "s/.*[[:space:]]$1=\([0-9]*\).*/\1/p" <<<"$HW"; }
CPUS=$(hw CPUs); SOCKETS=$(hw SocketsPerBoard); CORES=$(hw CoresPerSocket); THREADS=$(hw ThreadsPerCore)
HWMEM=$(hw RealMemory)
AVAIL=$(awk '/^MemAvailable:/ {print int($2/1024)}' /proc/meminfo)
MEM=$(( HWMEM * 95 / 100 )); [ $(( AVAIL * 90 / 100 )) -lt "$MEM" ] && MEM=$(( AVAIL * 90 / 100 ))

# ---------------------------------------------------------------------------------- already up?
all_up() {
    pid_alive slurmctld && pid_alive slurmd || return 1
    [ -L "$ETC/slurm.conf" ] && [ "$(readlink -f "$ETC/slurm.conf")" = "$BASE/etc/slurm.conf" ] || return 1
    grep -q "^PartitionName=$PARTITION " "$BASE/etc/slurm.conf" || return 1
    munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1 || return 1
    case "$(node_state)" in idle|mixed|allocated|completing) return 0;; *) return 1;; esac
}
if all_up; then
    log "cluster already running (node $NODE: $(node_state)); nothing to do"
    exit 0
fi

# partial or stale leftovers of an earlier run: stop them (only ours, by pid file)
if [ -d "$BASE/run" ]; then
    FERXAI_SLURM_BASE="$BASE" bash "$HERE/stop_slurm.sh" >&2 || true
fi

# -------------------------------------------------------------------------------------- config
mkdir -p "$BASE"/{etc,run,log,spool/ctld,spool/d}
rm -rf "$BASE"/spool/ctld/* "$BASE"/spool/d/*   # fresh state: job ids restart at 1
for f in "$BASE"/log/*.log; do [ -f "$f" ] && mv -f "$f" "$f.prev"; done

GRES_LINE=""; GRESTYPES=""
if [ "$FAKE_GPUS" -gt 0 ]; then
    mkdir -p "$BASE/dev"
    for i in $(seq 0 $(( FAKE_GPUS - 1 ))); do
        # a char device (1,3 = /dev/null's numbers) keeps slurmd happy; a plain file if mknod is
        # denied (slurmd then logs "not a valid character or block device" but still works)
        rm -f "$BASE/dev/fakegpu$i"
        mknod "$BASE/dev/fakegpu$i" c 1 3 2>/dev/null || : >"$BASE/dev/fakegpu$i"
    done
    GRESTYPES="GresTypes=gpu"
    GRES_LINE="Gres=gpu:fakegpu:$FAKE_GPUS"
    cat >"$BASE/etc/gres.conf" <<GRES
# fake GPUs: /dev/null-like device nodes, no driver; lets --gpus/--gres=gpu jobs be scheduled
AutoDetect=off
NodeName=$NODE Name=gpu Type=fakegpu File=$BASE/dev/fakegpu[0-$(( FAKE_GPUS - 1 ))]
GRES
else
    rm -f "$BASE/etc/gres.conf"
fi

cat >"$BASE/etc/slurm.conf" <<CONF
# generated by ferxai tests/slurm/start_slurm.sh: single-node test cluster, no systemd, no cgroups
ClusterName=ferxaitest
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$BASE/spool/ctld
SlurmdSpoolDir=$BASE/spool/d
SlurmctldPidFile=$BASE/run/slurmctld.pid
SlurmdPidFile=$BASE/run/slurmd.pid
SlurmctldLogFile=$BASE/log/slurmctld.log
SlurmdLogFile=$BASE/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
# squeue is the status command (no accounting): keep finished jobs listed >= 3 x init seconds
MinJobAge=300
$GRESTYPES
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$CPUS Sockets=$SOCKETS CoresPerSocket=$CORES ThreadsPerCore=$THREADS RealMemory=$MEM $GRES_LINE State=UNKNOWN
PartitionName=$PARTITION Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF

mkdir -p "$ETC"
link_conf() {  # link_conf NAME: /etc/slurm/NAME -> $BASE/etc/NAME
    local n=$1
    if [ -e "$ETC/$n" ] && [ ! -L "$ETC/$n" ]; then
        [ -e "$ETC/$n.pre-ferxai-test" ] || mv "$ETC/$n" "$ETC/$n.pre-ferxai-test"
        rm -f "$ETC/$n"
        log "moved existing $ETC/$n to $ETC/$n.pre-ferxai-test"
    fi
    ln -sfn "$BASE/etc/$n" "$ETC/$n"
}
link_conf slurm.conf
if [ -f "$BASE/etc/gres.conf" ]; then link_conf gres.conf
elif [ -L "$ETC/gres.conf" ]; then rm -f "$ETC/gres.conf"; fi

# --------------------------------------------------------------------------------------- munge
if munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then
    log "munged already answers on the default socket; reusing it (not ours, left running)"
else
    if [ ! -s /etc/munge/munge.key ]; then
        mungekey --create --keyfile=/etc/munge/munge.key
        chown munge:munge /etc/munge/munge.key; chmod 400 /etc/munge/munge.key
    fi
    install -d -o munge -g munge -m 0755 /run/munge
    install -d -o munge -g munge -m 0700 /var/log/munge /var/lib/munge
    rm -f /run/munge/munge.socket.2 /run/munge/munge.socket.2.lock
    runuser -u munge -- /usr/sbin/munged --force
    wait_for 10 munged bash -c 'munge -n </dev/null 2>/dev/null | unmunge' \
        || { dump_logs; tail -5 /var/log/munge/munged.log >&2; die "munged did not start"; }
    cp /run/munge/munged.pid "$BASE/run/munged.pid"   # marks it as ours for stop_slurm.sh
fi

# ------------------------------------------------------------------------------- slurm daemons
/usr/sbin/slurmctld || { dump_logs; die "slurmctld failed to start"; }
wait_for 30 slurmctld scontrol ping || { dump_logs; die "slurmctld not answering"; }
/usr/sbin/slurmd || { dump_logs; die "slurmd failed to start"; }

end=$(( $(date +%s) + TIMEOUT ))
while :; do
    st=$(node_state || true)
    case "$st" in
        idle) break ;;
        down*|drain*|inval*) scontrol update nodename="$NODE" state=resume >/dev/null 2>&1 || true ;;
    esac
    if [ "$(date +%s)" -ge "$end" ]; then
        sinfo -N -l >&2 || true; scontrol show node "$NODE" >&2 || true; dump_logs
        die "node $NODE not idle after ${TIMEOUT}s (state: '${st}')"
    fi
    sleep 0.3
done

timeout 60 srun -N1 -n1 -t 1 true || { dump_logs; die "smoke test 'srun true' failed"; }

log "SLURM up: node $NODE ($CPUS CPUs, ${MEM} MB, fake GPUs: $FAKE_GPUS), partition $PARTITION, base $BASE"
sinfo >&2
