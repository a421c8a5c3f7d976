# Helpers the load scripts share; `source` it from a script in this folder.

# A TCP port of 127.0.0.1 free a moment ago.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# wait_port PORT [TENTHS]: until something listens on 127.0.0.1:PORT, at
# most TENTHS tenths of a second (default 100); exits the script if not.
wait_port() {
    for _ in $(seq "${2:-100}"); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "nothing listens on $1" >&2; exit 1
}

# Peak resident memory (VmHWM) of a process, in MiB.
hwm_mib() { echo "$(awk '/VmHWM/ {print $2}' "/proc/$1/status") / 1024" | bc -l; }

# site_config PTT PASSWORD [RELAY_LINES]: in the current folder, a user
# repository with alice@example.test (and bob), a records file for
# example.test, and ptt.toml with every service on free ports of
# 127.0.0.1 (RELAY_LINES appended to [relay]). Sets SUB SUBS SIG REL RCV.
site_config() {
    local ptt=$1 pw=$2 relay_lines=${3:-}
    printf '%s\n' "$pw" | "$ptt" adduser --users users.git --domain example.test --password-stdin alice@example.test >/dev/null
    printf '%s\n' "$pw" | "$ptt" adduser --users users.git --password-stdin bob@example.test >/dev/null
    SUB=$(free_port); SUBS=$(free_port); SIG=$(free_port); REL=$(free_port); RCV=$(free_port)
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
listen = ["127.0.0.1:$SUB"]
listen_tls = ["127.0.0.1:$SUBS"]
[signer]
listen = ["127.0.0.1:$SIG"]
[relay]
listen = ["127.0.0.1:$REL"]
$relay_lines
[receiver]
listen = ["127.0.0.1:$RCV"]
TOML
}
