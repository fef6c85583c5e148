#!/bin/bash
# churn.sh: viewers come and go for a while, and the daemon's memory, file descriptors and
# threads are printed every 10 s. A leak per client shows as growth that does not level off.
#
#   scripts/churn.sh --kit KIT [--ours VUS_BENCH] [--workload office] [--seconds 600]
#                    [--port 5991] [--max-clients 6] [--out DIR]
#
# KIT is a built SPICE kit (spice-probe), as for bench-compare.py. Clients connect with a
# random preferred compression and stay 2 to 9 s; a quarter are killed (SIGKILL) 1.5 s in,
# a quarter are stopped (SIGSTOP) for 1 to 5 s 1.5 s in. At most --max-clients at once.
set -euo pipefail

KIT= OURS= WORKLOAD=office SECONDS_TOTAL=600 PORT=5991 MAX_CLIENTS=6 OUT=
while [ $# -gt 0 ]; do
    case "$1" in
    --kit) KIT=$2 ;;
    --ours) OURS=$2 ;;
    --workload) WORKLOAD=$2 ;;
    --seconds) SECONDS_TOTAL=$2 ;;
    --port) PORT=$2 ;;
    --max-clients) MAX_CLIENTS=$2 ;;
    --out) OUT=$2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
    shift 2
done
[ -x "$KIT/spice-probe" ] || { echo "--kit: no spice-probe in '$KIT'" >&2; exit 2; }
ROOT=$(cd "$(dirname "$0")/.." && pwd)
if [ -z "$OURS" ]; then
    (cd "$ROOT" && cargo build --release --bin vus-bench)
    OURS=$ROOT/target/release/vus-bench
fi
OUT=${OUT:-$(mktemp -d /tmp/churn.XXXXXX)}
mkdir -p "$OUT"

"$OURS" --workload "$WORKLOAD" --duration "$SECONDS_TOTAL" --port "$PORT" \
    >"$OUT/server.json" 2>"$OUT/server.log" &
SERVER=$!
sleep 2

clients=()
# Drops the clients that have ended from `clients`.
prune() {
    local alive=() p
    for p in "${clients[@]}"; do
        if kill -0 "$p" 2>/dev/null; then alive+=("$p"); else wait "$p" 2>/dev/null || true; fi
    done
    clients=("${alive[@]}")
}

sample() {
    local s=/proc/$SERVER
    [ -d "$s" ] || return 1
    printf '%5d s  rss %7d kB  fds %3d  threads %2d  clients %d\n' "$SECONDS" \
        "$(awk '/VmRSS/ {print $2}' "$s/status")" "$(ls "$s/fd" | wc -l)" \
        "$(ls "$s/task" | wc -l)" "${#clients[@]}"
}

started=0 killed=0 stopped=0
next_sample=$SECONDS
stop_at=$((SECONDS + SECONDS_TOTAL - 20))
while [ "$SECONDS" -lt "$stop_at" ] && kill -0 "$SERVER" 2>/dev/null; do
    prune
    if [ "$SECONDS" -ge "$next_sample" ]; then
        sample | tee -a "$OUT/samples.log"
        next_sample=$((next_sample + 10))
    fi
    if [ "${#clients[@]}" -ge "$MAX_CLIENTS" ]; then
        sleep 0.5
        continue
    fi
    started=$((started + 1))
    compression=$(shuf -n1 -e lz4 off auto-glz quic)
    "$KIT/spice-probe" 127.0.0.1 "$PORT" --duration $((RANDOM % 8 + 2)) --timeout 20 \
        --pref-compression "$compression" --json "$OUT/client$started.json" \
        >"$OUT/client$started.log" 2>&1 &
    client=$!
    clients+=("$client")
    case $((RANDOM % 4)) in
    0) sleep 1.5
       if kill -KILL "$client" 2>/dev/null; then killed=$((killed + 1)); fi
       wait "$client" 2>/dev/null || true ;;
    1) sleep 1.5
       if kill -STOP "$client" 2>/dev/null; then stopped=$((stopped + 1)); fi
       sleep $((RANDOM % 5 + 1)); kill -CONT "$client" 2>/dev/null || true ;;
    *) sleep 0.$((RANDOM % 9 + 1)) ;;
    esac
done
sample | tee -a "$OUT/samples.log" || true
rc=0
wait "$SERVER" || rc=$?
for p in "${clients[@]}"; do wait "$p" 2>/dev/null || true; done
failed=$(grep -L '"errors": \[\]' "$OUT"/client*.json 2>/dev/null | wc -l)
reported=$(ls "$OUT"/client*.json 2>/dev/null | wc -l)
echo "clients: $started started, $killed killed, $stopped stopped and resumed;" \
    "$reported reported, $failed of them with errors; daemon exit $rc; files in $OUT"
