#!/usr/bin/env bash
# The release binary under wrk on loopback, in AWS mode against the project's fake Personalize and
# DynamoDB Local (the sample catalog loaded with load-items). Reports, with the item cache cold
# (ITEM_CACHE_TTL=0) and warm: requests/s, latency p50/p99 (wrk), our own overhead per request
# (from the service's log: total minus upstream time), the fake's own latency under the same
# load, cold start (process start to the first 200, median of 10) and peak RSS. Then, warm, the
# other endpoints: /related-items, /rankings (25 ids) and /events (a webhook's 3 events).
# Needs wrk, python3, Java 17, and DynamoDB Local installed by tests/run.
#   benches/load.sh [DURATION_SECONDS] [CONNECTIONS]
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-15}
connections=${2:-16}
command -v wrk >/dev/null || { echo "benches/load.sh: wrk is required (apt-get install wrk)" >&2; exit 1; }
source benches/upstreams.sh
export LOG_FORMAT=json RUST_LOG=info PORT=$service_port

# Every request a different user of the sample's 3,000, so answers (and item sets) differ.
cat >"$work/users.lua" <<'LUA'
local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", "/recommendations?user_id=user-" .. (n * 7919 % 3000) .. "&count=10")
end
LUA
cat >"$work/fake.lua" <<'LUA'
local n = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  n = n + 1
  local body = '{"campaignArn":"arn:aws:personalize:us-east-1:000000000000:campaign/bench","userId":"user-'
    .. (n * 7919 % 3000) .. '","numResults":15}'
  return wrk.format(nil, "/recommendations", nil, body)
end
LUA

cat >"$work/related.lua" <<'LUA'
local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", "/related-items?item_id=sku-" .. (10001 + n * 7919 % 600) .. "&count=10")
end
LUA
cat >"$work/rankings.lua" <<'LUA'
local n = 0
local ids = {}
for i = 1, 25 do ids[i] = "sku-" .. (10001 + i * 23) end
local list = table.concat(ids, ",")
request = function()
  n = n + 1
  return wrk.format("GET", "/rankings?user_id=user-" .. (n * 7919 % 3000) .. "&item_ids=" .. list)
end
LUA
cat >"$work/events.lua" <<'LUA'
local n = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  n = n + 1
  local user = "user-" .. (n * 7919 % 3000)
  local event = '{"user_id":"' .. user .. '","event_type":"click","item_id":"sku-10001","properties":{"channel":"email"}}'
  return wrk.format(nil, "/events", nil, "[" .. event .. "," .. event .. "," .. event .. "]")
end
LUA

summary() { # wrk output → "rps p50 p99"
  awk '/Requests\/sec/ {rps=$2} /^ +50%/ {p50=$2} /^ +99%/ {p99=$2} END {print rps, p50, p99}' "$1"
}

echo "== upstream alone: the fake Personalize under the same load"
wrk -t2 -c"$connections" -d"${duration}s" --latency -s "$work/fake.lua" "http://127.0.0.1:$fake_port" >"$work/wrk-fake.txt"
read -r rps p50 p99 < <(summary "$work/wrk-fake.txt")
echo "fake Personalize: ${rps} req/s, p50 ${p50}, p99 ${p99}"
wrk -t1 -c1 -d"${duration}s" --latency -s "$work/fake.lua" "http://127.0.0.1:$fake_port" >"$work/wrk-fake-1.txt"
read -r rps p50 p99 < <(summary "$work/wrk-fake-1.txt")
echo "fake Personalize, one connection: ${rps} req/s, p50 ${p50}, p99 ${p99}"

for cache in cold warm; do
  ttl=300; [ "$cache" = cold ] && ttl=0
  ITEM_CACHE_TTL=$ttl target/release/personalize-braze >"$work/service-$cache.log" 2>&1 &
  service=$!
  pids+=("$service")
  wait_for "http://127.0.0.1:$service_port/health"
  # Warm: every item fetched once before measuring; cold: the same requests, nothing kept.
  wrk -t1 -c4 -d3s -s "$work/users.lua" "http://127.0.0.1:$service_port" >/dev/null
  : >"$work/service-$cache.log"
  wrk -t2 -c"$connections" -d"${duration}s" --latency -s "$work/users.lua" "http://127.0.0.1:$service_port" >"$work/wrk-$cache.txt"
  read -r rps p50 p99 < <(summary "$work/wrk-$cache.txt")
  rss=$(awk '/VmHWM/ {print $2 / 1024 " MB"}' "/proc/$service/status")
  echo "== item cache $cache: ${rps} req/s, p50 ${p50}, p99 ${p99}, peak RSS ${rss}"
  upstream_flag=""; [ "$cache" = cold ] && upstream_flag=--catalog-is-upstream
  echo "   $(benches/own-time.py "$work/service-$cache.log" $upstream_flag)"
  wrk -t1 -c1 -d"${duration}s" --latency -s "$work/users.lua" "http://127.0.0.1:$service_port" >"$work/wrk-$cache-1.txt"
  read -r rps p50 p99 < <(summary "$work/wrk-$cache-1.txt")
  echo "   one connection: ${rps} req/s, p50 ${p50}, p99 ${p99}"
  kill "$service"; wait "$service" 2>/dev/null || true
done

echo "== the other endpoints, item cache warm"
RELATED_ITEMS_ARN=arn:aws:personalize:us-east-1:000000000000:campaign/bench-sims \
RANKING_ARN=arn:aws:personalize:us-east-1:000000000000:campaign/bench-ranking \
EVENT_TRACKER_ID=bench-tracker \
  target/release/personalize-braze >"$work/service-endpoints.log" 2>&1 &
service=$!
pids+=("$service")
wait_for "http://127.0.0.1:$service_port/health"
for endpoint in related rankings events; do
  wrk -t1 -c4 -d3s -s "$work/$endpoint.lua" "http://127.0.0.1:$service_port" >/dev/null
  : >"$work/service-endpoints.log"
  wrk -t2 -c"$connections" -d"${duration}s" --latency -s "$work/$endpoint.lua" "http://127.0.0.1:$service_port" >"$work/wrk-$endpoint.txt"
  read -r rps p50 p99 < <(summary "$work/wrk-$endpoint.txt")
  echo "   $endpoint: ${rps} req/s, p50 ${p50}, p99 ${p99}; $(benches/own-time.py "$work/service-endpoints.log")"
done
kill "$service"; wait "$service" 2>/dev/null || true

echo "== cold start: process start to the first 200 (AWS mode, upstreams on loopback), 10 runs"
python3 - "$service_port" <<'PY'
import http.client, os, statistics, subprocess, sys, time
port = int(sys.argv[1])
runs = []
for _ in range(10):
    started = time.monotonic()
    process = subprocess.Popen(["target/release/personalize-braze"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env=dict(os.environ, ITEM_CACHE_TTL="300"))
    try:
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                conn.request("GET", "/recommendations?user_id=user-1&count=10")
                if conn.getresponse().status == 200:
                    runs.append((time.monotonic() - started) * 1000)
                    break
            except OSError:
                time.sleep(0.0005)
            if time.monotonic() - started > 10:
                sys.exit("no 200 within 10 s")
    finally:
        process.terminate()
        process.wait()
print(f"   median {statistics.median(runs):.1f} ms (min {min(runs):.1f}, max {max(runs):.1f})")
PY
