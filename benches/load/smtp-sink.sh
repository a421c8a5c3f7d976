#!/usr/bin/env bash
# Load comparison for `ptt smtp-sink` (issue 3), all in one run:
#   Postfix smtp-source sends N messages of L octets over S connections to
#   1. ptt smtp-sink --no-fsync   (writes every message to a file, no fsync)
#   2. Postfix smtp-sink -d       (writes every message to a file, no fsync)
#   3. ptt smtp-sink              (the default: fsync file and directory before 250)
# and prints messages per second, the server's CPU time per 1,000 messages
# (user+system, from /proc: less sensitive than msgs/s to other load on the
# machine) and the peak RSS (VmHWM) of each server.
#
# usage: benches/load/smtp-sink.sh   (from the workspace root; builds ptt in release)
#   N=10000 S=10 L=4096 ROUNDS=2 by default; PTT=path/to/ptt to skip the build;
#   WORK=dir puts the mail directories on that file system (default /tmp).
set -euo pipefail

N=${N:-10000}
S=${S:-10}
L=${L:-4096}
ROUNDS=${ROUNDS:-2}
cd "$(dirname "$0")/../.."
if [[ -z "${PTT:-}" ]]; then
    cargo build --release -p ptt-bins >&2
    PTT="${CARGO_TARGET_DIR:-target}/release/ptt"
fi
for p in smtp-source smtp-sink; do
    command -v "$p" >/dev/null || [[ -x /usr/sbin/$p ]] || { echo "needs $p (Debian package postfix)" >&2; exit 2; }
done
export PATH="$PATH:/usr/sbin"
work=$(mktemp -d "${WORK:-/tmp}/ptt-load-XXXXXX")
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

source benches/load/common.sh

# CPU ticks (user+system) a process has used so far.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# run_source NAME PID PORT DIR
run_source() {
    local name=$1 pid=$2 port=$3 dir=$4
    local t0 t1 c0 c1
    c0=$(cpu_ticks "$pid")
    t0=$(date +%s.%N)
    smtp-source -m "$N" -s "$S" -l "$L" -f a@example.org -t b@example.net "127.0.0.1:$port"
    t1=$(date +%s.%N)
    c1=$(cpu_ticks "$pid")
    local stored rss
    stored=$(find "$dir" -type f | wc -l)
    rss=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
    printf '%-26s %6d msgs in %6.2f s = %6.0f msgs/s   CPU %5.0f ms/1000 msgs   stored %6d   peak RSS %5.1f MiB\n' \
        "$name" "$N" "$(echo "$t1 - $t0" | bc -l)" "$(echo "$N / ($t1 - $t0)" | bc -l)" \
        "$(echo "($c1 - $c0) * 1000 / $(getconf CLK_TCK) * 1000 / $N" | bc -l)" \
        "$stored" "$(echo "$rss / 1024" | bc -l)"
}

start_ptt() {
    local dir=$1; shift
    "$PTT" smtp-sink --listen 127.0.0.1:0 --maildir "$dir" "$@" >"$dir.out" 2>"$dir.err" &
    local pid=$!
    pids+=("$pid")
    for _ in $(seq 100); do
        grep -q 'listening on' "$dir.out" 2>/dev/null && break
        sleep 0.1
    done
    PTT_PID=$pid
    PTT_PORT=$(sed -n 's/^listening on 127.0.0.1://p' "$dir.out")
}

ptt_nofsync() {
    start_ptt "$work/ptt-nofsync-$1" --no-fsync
    run_source "ptt smtp-sink --no-fsync" "$PTT_PID" "$PTT_PORT" "$work/ptt-nofsync-$1/new"
    kill "$PTT_PID"
}

postfix() {
    mkdir -p "$work/postfix-$1"
    chown nobody "$work/postfix-$1"
    local port pf
    port=$(free_port)
    smtp-sink -u nobody -R "$work/postfix-$1" -d dump.%M. -h sink.test "127.0.0.1:$port" 256 &
    pf=$!
    pids+=("$pf")
    wait_port "$port"
    run_source "postfix smtp-sink -d" "$pf" "$port" "$work/postfix-$1"
    kill "$pf"
}

ptt_fsync() {
    start_ptt "$work/ptt-fsync-$1"
    run_source "ptt smtp-sink (fsync)" "$PTT_PID" "$PTT_PORT" "$work/ptt-fsync-$1/new"
    kill "$PTT_PID"
}

echo "smtp-source -m $N -s $S -l $L; $ROUNDS rounds; $(nproc) cores; $(uname -r)"

# Rounds alternate which server goes first: on some file systems (ext4
# without a journal) creating files right after many were deleted costs more,
# and whoever runs first pays for the previous run's clean-up. Nothing is
# deleted until the end.
for round in $(seq "$ROUNDS"); do
    echo "round $round (load average $(cut -d' ' -f1-3 /proc/loadavg))"
    if (( round % 2 )); then
        ptt_nofsync "$round"; postfix "$round"
    else
        postfix "$round"; ptt_nofsync "$round"
    fi
    ptt_fsync "$round"
done
