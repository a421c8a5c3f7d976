#!/usr/bin/env bash
# Throughput of the receiver on smoltcp (issue 21) beside the std (tokio)
# receiver, on the same messages in one run. A network namespace holds a
# TAP device (192.0.2.1 on the kernel's side), BIND answering SPF, DKIM
# and DMARC for sender.test, and the generator; the same dkimpy-signed
# message of about L octets goes N times over S STARTTLS connections to
#   1. ptt-smol-receiver at 192.0.2.2 (smoltcp on the TAP device), which
#      hands each message on to Postfix's smtp-sink at 192.0.2.1;
#   2. `ptt serve receiver` (tokio, the kernel's TCP), which stores each
#      message in bob's Maildir, fsynced before the 250 (on WORK, tmpfs by
#      default, so the fsync is cheap).
# Both authenticate every message (SPF, DKIM, DMARC) and stamp
# Authentication-Results. Prints messages per second, the receiver's CPU
# time per 1,000 messages (user+system from /proc), its peak RSS (VmHWM),
# and for the smoltcp receiver its peak counted heap.
#
# usage: sudo benches/load/smol-receiver.sh   (from the workspace root;
#   builds in release). N=2000 S=10 L=4096 by default; WORK=dir.
set -euo pipefail

N=${N:-2000}
S=${S:-10}
L=${L:-4096}
[[ $(id -u) == 0 ]] || { echo "needs root: it makes a network namespace and a TAP device" >&2; exit 2; }
cd "$(dirname "$0")/../.."
root=$(pwd)
cargo build --release -p ptt-bins --bins >&2
bin="${CARGO_TARGET_DIR:-$root/target}/release"
export PATH="$PATH:/usr/sbin"
for p in named smtp-sink; do command -v "$p" >/dev/null || { echo "needs $p" >&2; exit 2; }; done
work=$(mktemp -d "${WORK:-/dev/shm}/ptt-smol-load-XXXXXX")
ns="pttload$$"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
    [[ -n "${KEEP:-}" ]] || rm -rf "$work"
}
trap cleanup EXIT
source "$root/benches/load/common.sh"

ip netns add "$ns"
ip -n "$ns" link set lo up
ip -n "$ns" tuntap add mode tap name ptttap0
ip -n "$ns" addr add 192.0.2.1/24 dev ptttap0
ip -n "$ns" link set ptttap0 up
# Not a function: `"${in_ns[@]}" cmd &` makes $! the command's own pid
# (ip netns exec execs it), so that it can be killed.
in_ns=(ip netns exec "$ns")
wait_ns() { # HOST PORT: until something answers there in the namespace
    for _ in $(seq 200); do
        "${in_ns[@]}" python3 -c "import socket,sys; socket.create_connection(('$1',$2),1)" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "nothing listens on $1:$2" >&2; exit 1
}
cd "$work"

# DNS: sender.test with SPF for the generator, an Ed25519 DKIM key, DMARC.
read -r priv pub < <(python3 -c 'import nacl.signing,base64; k=nacl.signing.SigningKey.generate(); print(base64.b64encode(bytes(k)).decode(), base64.b64encode(bytes(k.verify_key)).decode())')
dns=53
cat > sender.test.db <<ZONE
\$ORIGIN sender.test.
\$TTL 300
@ IN SOA ns.invalid. hostmaster.invalid. 1 3600 600 86400 300
@ IN NS ns.invalid.
@ IN TXT "v=spf1 ip4:192.0.2.0/24 ip4:127.0.0.0/8 -all"
sel._domainkey IN TXT "v=DKIM1; k=ed25519; p=$pub"
_dmarc IN TXT "v=DMARC1; p=reject"
ZONE
cat > named.conf <<CONF
options { directory "$work"; listen-on port $dns { 127.0.0.1; 192.0.2.1; }; listen-on-v6 { none; };
  recursion no; pid-file "$work/named.pid"; session-keyfile "$work/session.key"; dnssec-validation no; notify no; };
controls { };
zone "sender.test." { type primary; file "$work/sender.test.db"; };
CONF
"${in_ns[@]}" named -f -c "$work/named.conf" -L "$work/named.log" & pids+=($!)
wait_ns 127.0.0.1 $dns

# The message, signed by dkimpy.
python3 - "$priv" "$L" > msg.eml <<'PY'
import sys, dkim
priv, size = sys.argv[1].encode(), int(sys.argv[2])
head = b"From: Alice <alice@sender.test>\r\nTo: bob@example.test\r\nSubject: load\r\nDate: Mon, 07 Dec 2026 12:00:00 +0000\r\nMessage-ID: <load@sender.test>\r\n\r\n"
body = (b"The quick brown fox jumps over the lazy dog, again and  again.\r\n") * max(1, (size - len(head)) // 65)
m = head + body
sys.stdout.buffer.write(dkim.sign(m, b"sel", b"sender.test", priv, canonicalize=(b"relaxed", b"relaxed"), signature_algorithm=b"ed25519-sha256") + m)
PY
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=mx.example.test -keyout key.pem -out cert.pem 2>/dev/null

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
report() { # NAME PID TICKS_BEFORE CLIENT_OUTPUT EXTRA
    local sent secs ticks
    sent=$(awk '/^sent/ {print $2}' <<<"$4"); secs=$(awk '/^sent/ {print $6}' <<<"$4")
    ticks=$(( $(cpu_ticks "$2") - $3 ))
    printf '%-34s %6d sent  %7.1f msg/s  CPU %6.1f ms/1000 msgs  peak RSS %5.1f MiB%s\n' \
        "$1" "$sent" "$(echo "$sent / $secs" | bc -l)" \
        "$(echo "$ticks * 1000 / $(getconf CLK_TCK) * 1000 / ($sent + 0.0001)" | bc -l)" \
        "$(hwm_mib "$2")" "$5"
    sed -n '2,$p' <<<"$4"
}

# 1. The receiver on smoltcp, handing on to smtp-sink.
hop=2525
"${in_ns[@]}" smtp-sink -u nobody -c 192.0.2.1:$hop 1000 >/dev/null & pids+=($!)
wait_ns 192.0.2.1 $hop
"${in_ns[@]}" "$bin/ptt-smol-receiver" --tap ptttap0 --address 192.0.2.2/24 --resolver 192.0.2.1:$dns \
    --next-hop 192.0.2.1:$hop --hostname mx.example.test --domain example.test \
    --cert cert.pem --key key.pem 2> smol.log & smol=$!; pids+=($smol)
wait_ns 192.0.2.2 25
before=$(cpu_ticks $smol)
out=$("${in_ns[@]}" python3 "$root/benches/load/receiver_load_clients.py" 192.0.2.2 25 "$N" "$S" alice@sender.test bob@example.test msg.eml)
heap=$( (grep -o 'peak_allocated=[0-9]*' smol.log || true) | cut -d= -f2 | sort -n | tail -1)
report "ptt-smol-receiver (smoltcp)" $smol "$before" "$out" "$(printf '  peak heap %5.1f MiB' "$(echo "${heap:-0} / 1048576" | bc -l)")"
kill $smol

# 2. The std receiver, storing in bob's Maildir.
site_config "$bin/ptt" "load test password"
sed -i "s|^\[dns\]|[dns]\nresolver = \"127.0.0.1:$dns\"|" ptt.toml
cat >> ptt.toml <<TOML
max_messages_per_ip_per_minute = 1000000
max_sessions_per_ip = 1000
TOML
"${in_ns[@]}" "$bin/ptt" serve --config ptt.toml receiver 2> receiver.log & std=$!; pids+=($std)
wait_ns 127.0.0.1 "$RCV"
before=$(cpu_ticks $std)
out=$("${in_ns[@]}" python3 "$root/benches/load/receiver_load_clients.py" 127.0.0.1 "$RCV" "$N" "$S" alice@sender.test bob@example.test msg.eml)
report "ptt serve receiver (tokio)" $std "$before" "$out" ""
stored=$(find state/receiver/mail/bob@example.test/new -type f | wc -l)
echo "std receiver stored $stored; a copy of each receiver's output:"
head -c 600 "$(find state/receiver/mail/bob@example.test/new -type f | head -1)" | sed -n '1,6p'
