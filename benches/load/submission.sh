#!/usr/bin/env bash
# Load check for submission (issue 14): N concurrent sessions (implicit TLS,
# AUTH PLAIN), all open and authenticated at once, each then sending one
# message through submission -> signer -> relay -> receiver, every service
# in its own `ptt serve` process. Prints the client's report (sessions
# that completed, errors, seconds to authenticate all, seconds to send),
# the messages stored, and each service's peak RSS (VmHWM), against the
# 64 MiB budget.
#
# usage: benches/load/submission.sh   (from the workspace root; builds ptt in release)
#   N=1000 by default; PTT=path/to/ptt to skip the build; ONE_PROCESS=1 runs
#   every service in one `ptt serve` instead (its peak is then all of theirs).
set -euo pipefail

N=${N:-1000}
cd "$(dirname "$0")/../.."
root=$(pwd)
if [[ -z "${PTT:-}" ]]; then
    cargo build --release -p ptt-bins >&2
    PTT="${CARGO_TARGET_DIR:-target}/release/ptt"
fi
PTT=$(realpath "$PTT")
work=$(mktemp -d /tmp/ptt-submission-load-XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; [[ -n "${KEEP:-}" ]] || rm -rf "$work"; }
trap cleanup EXIT

source "$root/benches/load/common.sh"

cd "$work"
pw="load test password"
site_config "$PTT" "$pw"
sub=$SUB; subs=$SUBS; sig=$SIG; rel=$REL; rcv=$RCV
declare -A pid_of
if [[ -n "${ONE_PROCESS:-}" ]]; then
    "$PTT" serve --config ptt.toml 2>all.log &
    pids+=($!)
    for s in relay signer receiver submission; do pid_of[$s]=$!; done
else
    for s in relay signer receiver submission; do
        "$PTT" serve --config ptt.toml "$s" 2>"$s.log" &
        pids+=($!); pid_of[$s]=$!
    done
fi
for p in $sub $subs $rcv $sig $rel; do wait_port "$p" 200; done

python3 "$root/benches/load/submission_clients.py" "$subs" alice@example.test "$pw" "$N" bob@example.test
for _ in $(seq 100); do
    stored=$( (find state/receiver/mail/bob@example.test/new -type f 2>/dev/null || true) | wc -l)
    [[ $stored -ge $N ]] && break
    sleep 0.2
done
echo "stored $stored of $N"
if [[ -n "${ONE_PROCESS:-}" ]]; then
    hwm=$(awk '/VmHWM/ {print $2}' "/proc/${pids[0]}/status")
    printf 'all four services in one process: peak RSS %6.1f MiB\n' "$(echo "$hwm / 1024" | bc -l)"
else
    for s in submission signer relay receiver; do
        hwm=$(awk '/VmHWM/ {print $2}' "/proc/${pid_of[$s]}/status")
        printf '%-11s peak RSS %6.1f MiB (budget 64)\n' "$s" "$(echo "$hwm / 1024" | bc -l)"
    done
fi
