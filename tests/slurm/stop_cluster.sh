#!/usr/bin/env bash
# Stop the one-node test SLURM cluster started by start_cluster.sh.
#
# Usage: sudo tests/slurm/stop_cluster.sh [STATE_DIR]
#   STATE_DIR defaults to $UNLEARNING_SLURM_STATE or /run/unlearning-slurm.
#
# Cancels all jobs still known to the controller, then stops slurmd,
# slurmctld and (only if start_cluster.sh started it) munged by the PIDs
# recorded in STATE_DIR, waiting for each to exit (SIGKILL after a timeout).
# Idempotent: missing PID files or dead PIDs are fine. Keeps /etc/slurm and
# the state/log files (start_cluster.sh rewrites/reuses them).
set -euo pipefail

STATE_DIR="${1:-${UNLEARNING_SLURM_STATE:-/run/unlearning-slurm}}"
TERM_WAIT_S="${UNLEARNING_SLURM_STOP_WAIT_S:-20}"

log() { echo "[stop_cluster] $*" >&2; }

pid_of() {  # pid_of NAME -> prints the live PID recorded in STATE_DIR/NAME.pid
    local f="$STATE_DIR/$1.pid" pid
    [[ -s $f ]] || return 1
    pid="$(cat "$f")"
    [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

stop_one() {  # stop_one NAME
    local name="$1" pid
    if ! pid="$(pid_of "$name")"; then
        rm -f "$STATE_DIR/$name.pid"
        return 0
    fi
    log "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq $(( TERM_WAIT_S * 10 ))); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "$name (pid $pid) did not exit after ${TERM_WAIT_S}s: SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    rm -f "$STATE_DIR/$name.pid"
}

[[ -d $STATE_DIR ]] || { log "no state dir $STATE_DIR: nothing to stop"; exit 0; }

# Cancel leftover jobs so no job processes outlive the cluster.
if pid_of slurmctld >/dev/null && command -v squeue >/dev/null; then
    jobs="$(squeue -h -t PENDING,RUNNING,CONFIGURING,COMPLETING,SUSPENDED -o %i 2>/dev/null || true)"
    if [[ -n $jobs ]]; then
        log "cancelling jobs: $(echo $jobs)"
        # shellcheck disable=SC2086
        scancel $jobs 2>/dev/null || true
        for _ in $(seq 100); do
            [[ -z "$(squeue -h -t RUNNING,COMPLETING,CONFIGURING -o %i 2>/dev/null || true)" ]] && break
            sleep 0.2
        done
    fi
fi

stop_one slurmd
stop_one slurmctld
stop_one munged   # PID file exists only if start_cluster.sh started munged
ACTIVE_MARK=/run/unlearning-slurm.active
if [[ -s $ACTIVE_MARK && "$(cat "$ACTIVE_MARK")" == "$STATE_DIR" ]]; then
    rm -f "$ACTIVE_MARK"
fi
log "stopped"
