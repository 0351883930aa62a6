#!/usr/bin/env bash
# Counts the instructions the gateway executes per request, with callgrind: a measure of the
# gateway's own (user-space) work that does not move with the machine's load or speed, unlike
# CPU time. Runs N1 and then N2 requests of each scenario against a fresh gateway (one serving
# thread) and the bench mock, and reports (total(N2) - total(N1)) / (N2 - N1), so start-up and
# shutdown cancel out. Needs valgrind and python3.
#
#   scripts/instructions.sh [gateway-binary] [N1] [N2]
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
target/release/dragoman-bench mock --port $MOCK_PORT --threads 1 >/dev/null 2>&1 &
MOCK=$!
trap 'kill $MOCK 2>/dev/null || true; rm -rf "$WORK"' EXIT
cat > "$WORK/cfg.yaml" <<Y
model_list:
  - model_name: bench-chat
    litellm_params: {model: openai/gpt-4o-mini, api_base: "http://127.0.0.1:$MOCK_PORT/v1", api_key: sk-mock}
  - model_name: bench-messages-chat
    litellm_params: {model: custom_openai/gpt-4o-mini, api_base: "http://127.0.0.1:$MOCK_PORT/v1", api_key: sk-mock}
  - model_name: bench-responses
    litellm_params: {model: openai/gpt-5-codex, api_base: "http://127.0.0.1:$MOCK_PORT/v1", api_key: sk-mock}
    model_info: {mode: responses}
general_settings: {master_key: sk-bench-1234}
dragoman_settings: {database_path: $WORK/bench.db}
Y
cat > "$WORK/drive.py" <<'P'
import http.client, json, sys
port, scen, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
system = "You are a careful assistant that answers questions about software engineering. " * 12
user = "Say hello in one short sentence."
anthropic = {"max_tokens": 64, "system": [{"type": "text", "text": system, "cache_control": {"type": "ephemeral"}}],
             "messages": [{"role": "user", "content": user}]}
path, body = {
    "chat": ("/v1/chat/completions", {"messages": [{"role": "system", "content": system}, {"role": "user", "content": user}],
                                      "max_tokens": 64, "model": "bench-chat"}),
    "messages_chat": ("/v1/messages", dict(anthropic, model="bench-messages-chat")),
    "messages_responses": ("/v1/messages", dict(anthropic, model="bench-responses", stream=True)),
}[scen]
data = json.dumps(body).encode()
c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
for _ in range(n):
    c.request("POST", path, body=data, headers={"x-api-key": "sk-bench-1234", "content-type": "application/json",
                                                "anthropic-version": "2023-06-01"})
    r = c.getresponse()
    d = r.read()
    if r.status != 200:
        sys.exit(f"status {r.status}: {d[:300]!r}")
P
total() { # scenario, requests -> instructions of the whole gateway process
  rm -f "$WORK"/bench.db* "$WORK"/cg.out
  DRAGOMAN_WORKERS=1 DRAGOMAN_LOG=warn valgrind --tool=callgrind --callgrind-out-file="$WORK/cg.out" \
    "$BIN" serve --config "$WORK/cfg.yaml" --host 127.0.0.1 --port $GW_PORT >"$WORK/gw.log" 2>&1 &
  local vg=$!
  for _ in $(seq 150); do curl -sf -o /dev/null "http://127.0.0.1:$GW_PORT/health/liveliness" && break; sleep 0.2; done
  python3 "$WORK/drive.py" $GW_PORT "$1" "$2"
  kill -TERM $vg; wait $vg || true
  awk '/^summary:/ {print $2}' "$WORK/cg.out"
}
for s in chat messages_chat messages_responses; do
  a=$(total $s "$N1"); b=$(total $s "$N2")
  echo "$s: $(( (b - a) / (N2 - N1) )) instructions per request"
done
