#!/usr/bin/env bash
# stop_slurm.sh - stop the daemons that start_slurm.sh started, and only those: identified by the
# pid files under $FERXAI_SLURM_BASE/run, never by name. Cancels queued and running jobs first.
#   --purge   also delete $FERXAI_SLURM_BASE and the /etc/slurm symlinks into it (restoring any
#             file start_slurm.sh moved aside)
set -uo pipefail

BASE=${FERXAI_SLURM_BASE:-/tmp/ferxai-slurm}
ETC=/etc/slurm
PURGE=0; [ "${1:-}" = --purge ] && PURGE=1
log() { echo "[stop_slurm] $*" >&2; }

[ "$(id -u)" = 0 ] || { log "must run as root"; exit 1; }

# live_pid NAME: print the pid in $BASE/run/NAME.pid if it is a live, non-zombie process named NAME
live_pid() {
    local f="$BASE/run/$1.pid" pid state
    [ -s "$f" ] || return 1
    pid=$(tr -dc 0-9 <"$f"); [ -n "$pid" ] && [ -r "/proc/$pid/stat" ] || return 1
    state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) || return 1
    [ "$state" != Z ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$1" ] || return 1
    echo "$pid"
}

stop_one() {  # stop_one NAME [grace-seconds]
    local name=$1 grace=${2:-20} pid i
    if ! pid=$(live_pid "$name"); then rm -f "$BASE/run/$name.pid"; return 0; fi
    log "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null
    for ((i = 0; i < grace * 5; i++)); do
        live_pid "$name" >/dev/null || break
        sleep 0.2
    done
    if live_pid "$name" >/dev/null; then
        log "$name (pid $pid) ignored SIGTERM for ${grace}s; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null; sleep 0.5
    fi
    rm -f "$BASE/run/$name.pid"
}

# 1. cancel what is still queued or running, so no slurmstepd is left behind
if live_pid slurmctld >/dev/null; then
    jobs=$(squeue -h -o '%A' 2>/dev/null | sort -u | tr '\n' ' ')
    if [ -n "${jobs// /}" ]; then
        log "cancelling jobs: $jobs"
        # shellcheck disable=SC2086
        scancel $jobs 2>/dev/null
        for ((i = 0; i < 50; i++)); do
            [ -z "$(squeue -h -t PD,R,CG,S -o '%A' 2>/dev/null)" ] && break
            sleep 0.2
        done
    fi
fi

# 2. daemons, in reverse start order; munged only when its pid file says start_slurm.sh started it
stop_one slurmd 20
stop_one slurmctld 20
stop_one munged 10
[ -e /run/munge/munged.pid ] || rm -f /run/munge/munge.socket.2 /run/munge/munge.socket.2.lock 2>/dev/null

if [ "$PURGE" = 1 ]; then
    for n in slurm.conf gres.conf; do
        if [ -L "$ETC/$n" ] && [[ "$(readlink "$ETC/$n")" == "$BASE/"* ]]; then
            rm -f "$ETC/$n"
            [ -e "$ETC/$n.pre-ferxai-test" ] && mv "$ETC/$n.pre-ferxai-test" "$ETC/$n"
        fi
    done
    rm -rf "$BASE"
    log "purged $BASE"
fi
log "done"
exit 0
