#!/usr/bin/env bash
# The release binary under wrk while Personalize throttles every other call (the project's fake
# with --throttle-half), once without fallbacks (FALLBACK=off) and once with last-good,popular:
# requests/s, p50/p99, how many answers were errors, and how many a fallback gave (from the
# service's request lines). AWS mode, DynamoDB Local and the sample catalog, as benches/load.sh.
# Needs wrk, python3, Java 17, and DynamoDB Local installed by tests/run.
#   benches/fallback.sh [DURATION_SECONDS] [CONNECTIONS]
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-15}
connections=${2:-16}
command -v wrk >/dev/null || { echo "benches/fallback.sh: wrk is required (apt-get install wrk)" >&2; exit 1; }
source benches/upstreams.sh
export LOG_FORMAT=json RUST_LOG=info PORT=$service_port

# A second fake that throttles every other call.
throttling_port=$((service_port + 1))
target/release/examples/fake-personalize --port "$throttling_port" --items examples/data/items.csv \
  --throttle-half true >"$work/fake-throttling.log" 2>&1 &
pids+=($!)
wait_for "http://127.0.0.1:$throttling_port/recommendations" || true
export AWS_ENDPOINT_URL_PERSONALIZE_RUNTIME="http://127.0.0.1:$throttling_port"
popular=$(tail -n +2 examples/data/items.csv | cut -d, -f1 | head -n 150 | paste -sd, -)

cat >"$work/users.lua" <<'LUA'
local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", "/recommendations?user_id=user-" .. (n * 7919 % 3000) .. "&count=10")
end
LUA

for fallback in off last-good,popular; do
  FALLBACK=$fallback FALLBACK_POPULAR_IDS=$popular target/release/personalize-braze >"$work/service-fallback.log" 2>&1 &
  service=$!
  pids+=("$service")
  wait_for "http://127.0.0.1:$service_port/health"
  wrk -t1 -c4 -d3s -s "$work/users.lua" "http://127.0.0.1:$service_port" >/dev/null
  : >"$work/service-fallback.log"
  wrk -t2 -c"$connections" -d"${duration}s" --latency -s "$work/users.lua" "http://127.0.0.1:$service_port" >"$work/wrk-fallback.txt"
  read -r rps p50 p99 < <(awk '/Requests\/sec/ {rps=$2} /^ +50%/ {p50=$2} /^ +99%/ {p99=$2} END {print rps, p50, p99}' "$work/wrk-fallback.txt")
  echo "== FALLBACK=$fallback, Personalize throttling every other call: ${rps} req/s, p50 ${p50}, p99 ${p99}"
  python3 - "$work/service-fallback.log" <<'PY'
import collections, json, sys
status, sources, throttled = collections.Counter(), collections.Counter(), 0
for line in open(sys.argv[1]):
    try:
        record = json.loads(line)
    except ValueError:
        continue
    if record.get("message") != "request":
        continue
    status[record["status"]] += 1
    throttled += record.get("UpstreamThrottled", 0)
    if "fallback" in record:
        sources[record["fallback"]] += 1
total = sum(status.values())
errors = total - status[200]
print(f"   {total} requests: {errors} errors ({dict(status)}); {throttled} with Personalize throttled "
      f"past its retries; fallback answers {dict(sources)}")
PY
  kill "$service"; wait "$service" 2>/dev/null || true
done
