#!/usr/bin/env bash
# Whole-process speed of `ptt spam classify` beside `bogofilter -T -B`
# (issue 7), same training and same 1,000 test files, in one run:
#   1. ptt and bogofilter are both trained on the same training messages
#      (`ptt spam train`, `bogofilter -s -B` / `-n -B`);
#   2. the same N test messages (evenly spread over the sorted corpus, never
#      in the training set) are classified by
#        ptt spam classify --db DB FILES...            (all cores)
#        ptt spam classify --jobs 1 --db DB FILES...   (one thread)
#        bogofilter -T -B FILES...                     (one thread)
#      as whole processes, alternating, with hyperfine when installed (else a
#      loop over /usr/bin/time);
#   3. prints wall times (mean, median, least), messages per second, bogofilter
#      time / ptt time, and the CPU time (user + system) of each, which a
#      machine busy with other work inflates less than the wall time.
# Both verdict lists are checked to have one line per file.
#
# usage: benches/load/spam-classify.sh [CORPUS]   (from anywhere; builds ptt in release)
#   CORPUS: directories named spam* hold spam, the others ham, one message per
#   file (default ../shared/corpora/spamassassin-public-corpus).
#   N=1000 test messages; RUNS=10 timed runs per command; PTT=path/to/ptt to
#   skip the build; PRUNE=MIN passes --prune MIN and OSB_WINDOW=N passes
#   --osb-window N to ptt spam train (classify uses the database's); KEEP=1
#   keeps the work directory (databases, file list, run-* scripts) for profiling.
set -euo pipefail

N=${N:-1000}
RUNS=${RUNS:-10}
cd "$(dirname "$0")/../.."
CORPUS=$(realpath "${1:-../shared/corpora/spamassassin-public-corpus}")
[[ -d "$CORPUS" ]] || { echo "no corpus directory $CORPUS" >&2; exit 2; }
command -v bogofilter >/dev/null || { echo "needs bogofilter (apt-get install bogofilter)" >&2; exit 2; }
if [[ -z "${PTT:-}" ]]; then
    cargo build --release -p ptt-bins --bin ptt >&2
    PTT="${CARGO_TARGET_DIR:-target}/release/ptt"
fi
PTT=$(realpath "$PTT")
work=$(mktemp -d "${TMPDIR:-/tmp}/ptt-spam-load-XXXXXX")
if [[ -n "${KEEP:-}" ]]; then
    echo "keeping the databases and scripts in $work" >&2
else
    trap 'rm -rf "$work"' EXIT
fi
trap 'echo "spam-classify.sh: failed at line $LINENO" >&2' ERR

# Label every file (S spam / H ham), sort by path, and pick N test files
# evenly spread over the list: file i is a test file when
# floor((i+1)*N/total) > floor(i*N/total). Everything else trains.
find "$CORPUS" -mindepth 2 -maxdepth 2 -type f ! -name '.*' | LC_ALL=C sort |
    awk -v corpus="$CORPUS/" '{
        rel = substr($0, length(corpus) + 1); split(rel, p, "/");
        print ((p[1] ~ /^spam/) ? "S" : "H") "\t" $0 }' >"$work/all"
total=$(wc -l <"$work/all")
(( total > N )) || { echo "corpus has $total files, need more than N=$N" >&2; exit 2; }
awk -F'\t' -v n="$N" -v t="$total" -v w="$work" '{
        i = NR - 1
        if (int((i + 1) * n / t) > int(i * n / t)) print $2 > (w "/test")
        else if ($1 == "S") print $2 > (w "/train-spam")
        else print $2 > (w "/train-ham") }' "$work/all"
mapfile -t test <"$work/test"
bytes=$(cat "${test[@]}" | wc -c)
echo "corpus $CORPUS: $total files; training on $(wc -l <"$work/train-spam") spam +" \
     "$(wc -l <"$work/train-ham") ham; testing ${#test[@]} files, $((bytes / ${#test[@]})) bytes on average" >&2

# Training (not timed). xargs keeps argument lists within limits.
mkdir -p "$work/bogo"
xargs -d '\n' -a "$work/train-spam" bogofilter -d "$work/bogo" -s -B
xargs -d '\n' -a "$work/train-ham" bogofilter -d "$work/bogo" -n -B
mapfile -t tspam <"$work/train-spam"
mapfile -t tham <"$work/train-ham"
"$PTT" spam train --db "$work/ptt.db" ${PRUNE:+--prune "$PRUNE"} ${OSB_WINDOW:+--osb-window "$OSB_WINDOW"} --spam "${tspam[@]}" --ham "${tham[@]}" >&2
echo "ptt db: $(stat -c %s "$work/ptt.db") bytes; bogofilter db: $(du -sb "$work/bogo" | cut -f1) bytes" >&2

# Each command is a small bash script that reads the file list and execs the
# filter (bogofilter exits 0/1/2 for spam/ham/unsure, 3 on error), so that
# hyperfine's command lines stay short; the wrapper costs the same for all.
wrap() {
    local name=$1; shift
    printf '%s\n' '#!/usr/bin/env bash' "mapfile -t f <$work/test" "$*" >"$work/run-$name"
    chmod +x "$work/run-$name"
}
wrap ptt "exec $PTT spam classify --db $work/ptt.db \"\${f[@]}\""
wrap ptt1 "exec $PTT spam classify --jobs 1 --db $work/ptt.db \"\${f[@]}\""
wrap bogo "bogofilter -d $work/bogo -T -B \"\${f[@]}\"; (( \$? <= 2 ))"
# Run before every timed run: this machine's memory reclaimer (DAMON) pages
# out cached files within seconds, and whichever command came first would
# pay for reading the messages and its database from disk.
wrap warm "cat -- \"\${f[@]}\" $work/ptt.db $work/bogo/* >/dev/null"

# Sanity: one verdict line per test file from each, and the verdict mix.
for name in ptt ptt1 bogo; do
    "$work/run-$name" >"$work/$name.out"
    lines=$(wc -l <"$work/$name.out")
    [[ $lines == "${#test[@]}" ]] || { echo "$name printed $lines lines for ${#test[@]} files" >&2; exit 1; }
done
cmp -s "$work/ptt.out" "$work/ptt1.out" || { echo "ptt's output differs with --jobs 1" >&2; exit 1; }
echo "ptt verdicts:        $(awk '{print $(NF-1)}' "$work/ptt.out" | sort | uniq -c | tr -s ' \n' ' ')" >&2
echo "bogofilter verdicts: $(awk '{print $(NF-1)}' "$work/bogo.out" | sort | uniq -c | tr -s ' \n' ' ')" >&2

if command -v hyperfine >/dev/null; then
    # One hyperfine call runs each command all its runs in a row; to spread
    # the noise of a shared machine evenly, run the three in rounds of 2 runs
    # each (a warm-up run first in the first round).
    rounds=$(( (RUNS + 1) / 2 ))
    for name in ptt ptt1 bogo; do : >"$work/$name.times"; : >"$work/$name.cpu"; done
    for ((r = 0; r < rounds; r++)); do
        hyperfine -N --style none --warmup $(( r == 0 )) --runs 2 --prepare "$work/run-warm" \
            --export-json "$work/h.json" \
            -n ptt "$work/run-ptt" -n ptt1 "$work/run-ptt1" -n bogo "$work/run-bogo" >/dev/null
        python3 - "$work" <<'EOF'
import json, sys
w = sys.argv[1]
for r in json.load(open(f"{w}/h.json"))["results"]:
    with open(f"{w}/{r['command']}.times", "a") as f:
        f.write("\n".join(str(t) for t in r["times"]) + "\n")
    with open(f"{w}/{r['command']}.cpu", "a") as f:
        f.write(f"{r['user'] + r['system']}\n")
EOF
    done
else
    for name in ptt ptt1 bogo; do : >"$work/$name.times"; : >"$work/$name.cpu"; done
    for ((r = 0; r < RUNS; r++)); do
        for name in ptt ptt1 bogo; do
            "$work/run-warm"
            /usr/bin/time -f '%e %U %S' -o "$work/t" "$work/run-$name" >/dev/null
            read -r e u s <"$work/t"
            echo "$e" >>"$work/$name.times"
            echo "$u + $s" | bc -l >>"$work/$name.cpu"
        done
    done
fi
summary() { sort -g "$1" | awk '{ t[NR] = $1; s += $1 } END {
    printf "%.3f %.3f %.3f %d\n", s / NR, t[int((NR + 1) / 2)], t[1], NR }'; }
cpu() { awk '{ s += $1 } END { printf "%.3f\n", s / NR }' "$1"; }
read -r bm bmed bmin bn < <(summary "$work/bogo.times")
bcpu=$(cpu "$work/bogo.cpu")
printf '\n%-36s %8s %8s %8s %9s %8s %9s %8s\n' "(${#test[@]} messages, $bn runs each)" \
    mean median min "msgs/s" "vs bogo" "CPU s" "CPU vs"
for name in ptt ptt1 bogo; do
    read -r m med mn n < <(summary "$work/$name.times")
    c=$(cpu "$work/$name.cpu")
    case $name in
        ptt) label="ptt spam classify (all cores)";;
        ptt1) label="ptt spam classify --jobs 1";;
        bogo) label="bogofilter -T -B";;
    esac
    printf '%-36s %7.3fs %7.3fs %7.3fs %9.0f %7.2fx %8.3fs %7.2fx\n' "$label" "$m" "$med" "$mn" \
        "$(echo "${#test[@]} / $med" | bc -l)" "$(echo "$bmed / $med" | bc -l)" "$c" "$(echo "$bcpu / $c" | bc -l)"
done
echo "(vs bogo: bogofilter's median wall time / this command's; CPU s: mean user+system time;"
echo " CPU vs: bogofilter's CPU time / this command's; $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg))"
