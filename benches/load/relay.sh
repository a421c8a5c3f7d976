#!/usr/bin/env bash
# Load comparison for the relay (issue 16), all in one run: the same N
# messages of about L octets, from the same generator (relay_clients.py:
# S connections at once, STARTTLS on each), through
#   1. Postfix as a relay: smtpd -> its queue (fsynced) -> smtp to the sink;
#   2. the same Postfix with OpenDKIM as its signing milter (RSA-2048), what
#      a user would run instead of ptt;
#   3. ptt: submission (AUTH PLAIN) -> signer (DKIM Ed25519 and RSA-2048)
#      -> relay (its queue fsynced) -> the sink, each service its own process;
# all to the same sink (ptt smtp-sink --no-fsync, STARTTLS). Prints, for
# each, messages per second from the first message sent to the last one
# stored at the sink, the machine's CPU time per message over that span
# (user+system on all cores: generator and sink included, the same for
# every row; steadier than msgs/s when the cores are shared), and each ptt
# service's peak RSS (VmHWM) against the 64 MiB budget.
#
# usage: benches/load/relay.sh   (from the workspace root; builds ptt in release)
#   N=2000 S=10 L=4096 by default; PTT=path/to/ptt to skip the build.
#   WORK=dir puts the queues and mail directories on that file system
#   (default /tmp). On ext4 made without a journal, each new file's inode
#   is found past the inodes freed in the last minutes: a row runs slower
#   after rows (or runs) that deleted many files, so run it on a quiet
#   machine, a few times.
#   Needs root (a private Postfix instance), postfix and opendkim installed.
set -euo pipefail

N=${N:-2000}
S=${S:-10}
L=${L:-4096}
cd "$(dirname "$0")/../.."
root=$(pwd)
if [[ -z "${PTT:-}" ]]; then
    cargo build --release -p ptt-bins >&2
    PTT="${CARGO_TARGET_DIR:-target}/release/ptt"
fi
PTT=$(realpath "$PTT")
export PATH="$PATH:/usr/sbin"
for p in postfix opendkim opendkim-genkey openssl; do
    command -v "$p" >/dev/null || { echo "needs $p (Debian packages postfix, opendkim, opendkim-tools, openssl)" >&2; exit 2; }
done
work=$(mktemp -d "${WORK:-/tmp}/ptt-relay-load-XXXXXX")
chmod 755 "$work"
pids=()
pf_conf=""
cleanup() {
    [[ -n "$pf_conf" ]] && postfix -c "$pf_conf" stop >/dev/null 2>&1 || true
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    [[ -n "${KEEP:-}" ]] || rm -rf "$work"
}
trap cleanup EXIT

source "$root/benches/load/common.sh"

cd "$work"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj /CN=localhost -keyout tls.key -out tls.pem 2>/dev/null

# The sink, shared by every row; each row has its own Maildir.
start_sink() {
    local dir=$1
    "$PTT" smtp-sink --listen 127.0.0.1:0 --maildir "$dir" --no-fsync \
        --tls-cert tls.pem --tls-key tls.key >"$dir.out" 2>"$dir.err" &
    pids+=($!)
    for _ in $(seq 100); do
        grep -q 'listening on' "$dir.out" 2>/dev/null && break
        sleep 0.1
    done
    SINK_PORT=$(sed -n 's/^listening on 127.0.0.1://p' "$dir.out")
}

# measure NAME PORT SINKDIR [USER PASSWORD]: generator to PORT, until the
# sink has N messages.
# The machine's CPU time so far (user+system, all cores), in ticks.
machine_ticks() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8}' /proc/stat; }

measure() {
    local name=$1 port=$2 dir=$3; shift 3
    local t0 t1 c0 c1 stored report
    c0=$(machine_ticks)
    t0=$(date +%s.%N)
    report=$(python3 "$root/benches/load/relay_clients.py" "$port" "$N" "$S" "$L" \
        alice@example.test bob@example.net "$@")
    for _ in $(seq 6000); do
        stored=$( (find "$dir/new" -type f 2>/dev/null || true) | wc -l)
        [[ $stored -ge $N ]] && break
        sleep 0.05
    done
    t1=$(date +%s.%N)
    c1=$(machine_ticks)
    # Kept for the comparison printed at the end.
    LAST_RATE=$(echo "$stored / ($t1 - $t0)" | bc -l)
    printf '%-34s %5d at the sink in %7.2f s = %7.1f msgs/s   machine CPU %6.1f ms/msg   (generator: %s)\n' \
        "$name" "$stored" "$(echo "$t1 - $t0" | bc -l)" "$(echo "$stored / ($t1 - $t0)" | bc -l)" \
        "$(echo "($c1 - $c0) * 1000 / $(getconf CLK_TCK) / $stored" | bc -l)" "$report"
}

# A private Postfix instance relaying everything to the sink.
postfix_row() {
    local name=$1 milter=${2:-}
    local pf=$work/postfix-$RANDOM
    mkdir -p "$pf/conf" "$pf/queue" "$pf/data"
    local port; port=$(free_port)
    start_sink "$pf.sink"
    cat > "$pf/conf/main.cf" <<CF
compatibility_level = 3.6
queue_directory = $pf/queue
data_directory = $pf/data
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = relay.example.test
mydomain = example.test
myorigin = example.test
mydestination =
local_recipient_maps =
mynetworks = 127.0.0.0/8
relayhost = [127.0.0.1]:$SINK_PORT
smtp_dns_support_level = disabled
smtpd_relay_restrictions = permit_mynetworks, reject
smtpd_tls_security_level = may
smtpd_tls_cert_file = $work/tls.pem
smtpd_tls_key_file = $work/tls.key
smtp_tls_security_level = may
maillog_file = $pf/maillog
maillog_file_prefixes = $work
default_process_limit = 100
default_destination_concurrency_limit = 20
smtpd_milters = $milter
milter_default_action = tempfail
CF
    # The system's master.cf, without chroot, smtpd on our port only.
    awk -v port="$port" '
        /^#/ || NF == 0 { print; next }
        /^[ \t]/ { print; next }
        $1 == "smtp" && $2 == "inet" { $1 = "127.0.0.1:" port; $5 = "n"; print; next }
        $2 == "inet" { next }
        { if (NF >= 8) $5 = "n"; print }
    ' /etc/postfix/master.cf > "$pf/conf/master.cf"
    postfix -c "$pf/conf" check >/dev/null 2>&1 || true
    chown -R postfix "$pf/data"
    pf_conf="$pf/conf"
    postfix -c "$pf/conf" start >/dev/null
    wait_port "$port" 300
    measure "$name" "$port" "$pf.sink"
    postfix -c "$pf/conf" stop >/dev/null 2>&1 || true
    pf_conf=""
}

opendkim_milter() {
    mkdir -p dkim
    opendkim-genkey -b 2048 -d example.test -s load -D dkim >/dev/null
    chown -R opendkim dkim 2>/dev/null || true
    local port; port=$(free_port)
    cat > dkim/opendkim.conf <<CF
Mode s
Domain example.test
Selector load
KeyFile $work/dkim/load.private
Socket inet:$port@127.0.0.1
Canonicalization relaxed/relaxed
UserID opendkim
PidFile $work/dkim/pid
Background no
RequireSafeKeys false
CF
    opendkim -x dkim/opendkim.conf -f >dkim/log 2>&1 &
    pids+=($!)
    wait_port "$port" 300
    MILTER="inet:127.0.0.1:$port"
}

ptt_row() {
    local pw="load test password"
    start_sink "$work/ptt.sink"
    site_config "$PTT" "$pw" "smarthost = \"127.0.0.1:$SINK_PORT\""
    local sub=$SUB subs=$SUBS sig=$SIG rel=$REL rcv=$RCV
    declare -A pid_of
    for s in relay signer receiver submission; do
        "$PTT" serve --config ptt.toml "$s" 2>"$s.log" &
        pids+=($!); pid_of[$s]=$!
    done
    for p in $sub $subs $sig $rel $rcv; do wait_port "$p" 300; done
    declare -A cpu0
    for s in submission signer relay; do cpu0[$s]=$(awk '{print $14 + $15}' "/proc/${pid_of[$s]}/stat"); done
    measure "ptt submission>signer>relay" "$sub" "$work/ptt.sink" alice@example.test "$pw"
    for s in submission signer relay; do
        local c1; c1=$(awk '{print $14 + $15}' "/proc/${pid_of[$s]}/stat")
        printf '  %-11s CPU %5.2f ms/msg   peak RSS %5.1f MiB (budget 64)\n' "$s" \
            "$(echo "($c1 - ${cpu0[$s]}) * 1000 / $(getconf CLK_TCK) / $N" | bc -l)" "$(hwm_mib "${pid_of[$s]}")"
    done
}

# The generator straight to the sink: what every row's figures include.
baseline_row() {
    start_sink "$work/direct.sink"
    measure "generator -> sink (no relay)" "$SINK_PORT" "$work/direct.sink"
}

echo "N=$N messages of ~$L octets over S=$S connections; $(nproc) cores; $(uname -r); $(postconf -d mail_version 2>/dev/null)"
baseline_row
postfix_row "postfix relay (queue fsynced)"
postfix_rate=$LAST_RATE
opendkim_milter
postfix_row "postfix + opendkim milter" "$MILTER"
opendkim_rate=$LAST_RATE
ptt_row
printf 'ptt delivers %.2fx the rate of Postfix (the target is 3x) and %.2fx that of Postfix + OpenDKIM\n' \
    "$(echo "$LAST_RATE / $postfix_rate" | bc -l)" "$(echo "$LAST_RATE / $opendkim_rate" | bc -l)"
