#!/usr/bin/env bash
# Counts the instructions the gateway executes per request, with callgrind: a measure of the
# gateway's own (user-space) work that does not move with the machine's load or speed, unlike
# CPU time. Runs N1 and then N2 requests of each scenario (the load benchmark's configuration
# and requests, from `dragoman-bench config` / `drive`) against a fresh gateway (one serving
# thread) and the bench mock, and reports (total(N2) - total(N1)) / (N2 - N1), so start-up and
# shutdown cancel out. Needs valgrind and curl.
#
#   scripts/instructions.sh [gateway-binary] [N1] [N2]
#   KEYED=1 scripts/instructions.sh   # chat as master key, then with a virtual key in a team,
#                                     # with a user, limits on each (the policy stage's cost)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-target/release/dragoman}
N1=${2:-100}
N2=${3:-400}
command -v valgrind >/dev/null || { echo "valgrind is needed (apt-get install valgrind)" >&2; exit 1; }
[ -x "$BIN" ] || cargo build --release -q -p dragoman
cargo build --release -q -p dragoman-bench
WORK=$(mktemp -d)
MOCK_PORT=18111
GW_PORT=18112
BENCH=target/release/dragoman-bench
$BENCH mock --port $MOCK_PORT --threads 1 >/dev/null 2>&1 &
MOCK=$!
trap 'kill $MOCK 2>/dev/null || true; rm -rf "$WORK"' EXIT
# The load benchmark's own configuration and requests, so the two measure the same thing.
$BENCH config --mock-port $MOCK_PORT --db "$WORK/bench.db" > "$WORK/cfg.yaml"
total() { # scenario, requests -> instructions of the whole gateway process
  rm -f "$WORK"/bench.db* "$WORK"/cg.out
  DRAGOMAN_WORKERS=1 DRAGOMAN_LOG=warn valgrind --tool=callgrind --callgrind-out-file="$WORK/cg.out" \
    "$BIN" serve --config "$WORK/cfg.yaml" --host 127.0.0.1 --port $GW_PORT >"$WORK/gw.log" 2>&1 &
  local vg=$!
  for _ in $(seq 150); do curl -sf -o /dev/null "http://127.0.0.1:$GW_PORT/health/liveliness" && break; sleep 0.2; done
  $BENCH drive --port $GW_PORT --scenario "$1" --requests "$2" ${3:+--virtual-key}
  kill -TERM $vg; wait $vg || true
  awk '/^summary:/ {print $2}' "$WORK/cg.out"
}
if [ -n "${KEYED:-}" ]; then
  for keyed in "" 1; do
    a=$(total chat "$N1" $keyed); b=$(total chat "$N2" $keyed)
    echo "chat${keyed:+ (virtual key)}: $(( (b - a) / (N2 - N1) )) instructions per request"
  done
  exit 0
fi
for s in chat messages_chat messages_responses; do
  a=$(total $s "$N1"); b=$(total $s "$N2")
  echo "$s: $(( (b - a) / (N2 - N1) )) instructions per request"
done
