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

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
    for _ in $(seq 200); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "port $1 never opened" >&2; exit 1
}

cd "$work"
pw="load test password"
printf '%s\n' "$pw" | "$PTT" adduser --users users.git --domain example.test --password-stdin alice@example.test >/dev/null
printf '%s\n' "$pw" | "$PTT" adduser --users users.git --password-stdin bob@example.test >/dev/null
sub=$(free_port); subs=$(free_port); rcv=$(free_port); sig=$(free_port); rel=$(free_port)
printf 'zones = ["example.test"]\n' > records.toml
cat > ptt.toml <<TOML
domain = "example.test"
hostname = "mx.example.test"
state = "state"
[dns]
records = "records.toml"
[users]
repo = "users.git"
[submission]
listen = ["127.0.0.1:$sub"]
listen_tls = ["127.0.0.1:$subs"]
[signer]
listen = ["127.0.0.1:$sig"]
[relay]
listen = ["127.0.0.1:$rel"]
[receiver]
listen = ["127.0.0.1:$rcv"]
TOML
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
for p in $sub $subs $rcv $sig $rel; do wait_port "$p"; done

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
