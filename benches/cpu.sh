#!/usr/bin/env bash
# CPU per request, side by side in one run, in AWS mode against the fake Personalize and DynamoDB
# Local on loopback (benches/upstreams.sh), item cache warm, count 25, one request at a time:
#   1. HTTP on new connections: our /health and /recommendations (on each runtime flavour), and
#      the same two from a workshop-style Python (boto3) service on the same upstreams
#      (benches/boto3-service.py).
#   2. The Lambda path: the binary under the project's Runtime API emulator (API Gateway REST
#      events, one invocation at a time): init, first answer and CPU per invocation, for each
#      Tokio runtime flavour.
#   3. Cold start on the Lambda path: process start to the first answer, 10 starts.
#   4. Lambda Managed Instances: AWS_LAMBDA_MAX_CONCURRENCY=8 with 8 invocations in flight, the
#      function given one vCPU (taskset): invocations per second per vCPU and CPU per invocation,
#      next to one at a time on the same vCPU.
# Needs python3, Java 17, DynamoDB Local installed by tests/run, and taskset (util-linux).
#   benches/cpu.sh [REQUESTS]
set -euo pipefail
cd "$(dirname "$0")/.."
requests=${1:-5000}
source benches/upstreams.sh
cargo build -q --release --example cpu-bench
bench=target/release/examples/cpu-bench
python_venv=$(tests/python-tools benches/boto3/requirements.txt)
export LOG_FORMAT=json RUST_LOG=info
cpu_of() { sed -n 's/.*: CPU \([0-9]*\) µs per request.*/\1/p' "$1"; }

measure_http() { # NAME COMMAND… : the service on service_port, both paths measured
  local name=$1; shift
  PORT=$service_port "$@" >"$work/cpu-$name.log" 2>&1 &
  local service=$!
  pids+=("$service")
  wait_for "http://127.0.0.1:$service_port/health"
  "$bench" http --pid "$service" --requests "$requests" --url "http://127.0.0.1:$service_port/health" \
    | tee "$work/cpu-$name-health.txt" | sed "s|^|$name |"
  "$bench" http --pid "$service" --requests "$requests" \
    --url "http://127.0.0.1:$service_port/recommendations?user_id={user}&count=25" \
    | tee "$work/cpu-$name-recommendations.txt" | sed "s|^|$name |"
  kill "$service"; wait "$service" 2>/dev/null || true
}

echo "== 1. HTTP, one request at a time, each on a new connection"
measure_http rust target/release/personalize-braze
measure_http rust-current-thread env RUNTIME_FLAVOR=current_thread target/release/personalize-braze
measure_http python "$python_venv/bin/python" benches/boto3-service.py
for name in rust rust-current-thread; do
  awk -v name="$name" -v h="$(cpu_of "$work/cpu-$name-health.txt")" \
    -v r="$(cpu_of "$work/cpu-$name-recommendations.txt")" \
    -v p="$(cpu_of "$work/cpu-python-recommendations.txt")" \
    'BEGIN { printf "%s: /recommendations costs %.2f× our /health; Python costs %.1f× our /recommendations\n", name, r / h, p / r }'
done

echo "== 2. Lambda path, one invocation at a time"
lambda_flavour() { # LABEL VAR=VALUE… : one run of the emulator with those variables
  local label=$1; shift
  echo "-- $label"
  env "$@" "$bench" lambda --invocations "$requests" --log "$work/cpu-lambda.log" -- target/release/personalize-braze
}
lambda_flavour "current_thread (the default in Lambda)" RUNTIME_FLAVOR=
lambda_flavour "multi_thread, 2 workers (the default before)" RUNTIME_FLAVOR=multi_thread TOKIO_WORKER_THREADS=2
lambda_flavour "multi_thread, 1 worker" RUNTIME_FLAVOR=multi_thread TOKIO_WORKER_THREADS=1

echo "== 3. Cold start on the Lambda path, 10 starts (the upstreams already warm)"
for _ in $(seq 10); do
  "$bench" lambda --invocations 1 --warmup 0 --log "$work/cpu-cold.log" -- target/release/personalize-braze | sed -n 1p
  # The first answer's upstream waits, from its request line.
  grep -o '"RecommenderLatency":[0-9.]*,"CatalogLatency":[0-9.]*' "$work/cpu-cold.log" | sed -n 1p
done | paste - - | tee "$work/cpu-cold.txt" | sed -n 1p
python3 - "$work/cpu-cold.txt" <<'PY'
import re, statistics, sys
runs = [line for line in open(sys.argv[1])]
def median(pattern):
    return statistics.median(float(re.search(pattern, line).group(1)) for line in runs)
start = median(r"start to first answer: ([0-9.]+) ms")
upstream = median(r'"RecommenderLatency":([0-9.]+)') + median(r'"CatalogLatency":([0-9.]+)')
print(f"   median of {len(runs)}: init {median(r'init [^:]*: ([0-9.]+) ms'):.1f} ms, start to first answer {start:.1f} ms, "
      f"of which waiting on Personalize and DynamoDB Local {upstream:.1f} ms")
PY

echo "== 4. Lambda Managed Instances: the function on one vCPU (taskset -c 1)"
for concurrency in 1 8; do
  echo "-- AWS_LAMBDA_MAX_CONCURRENCY=$concurrency, $concurrency in flight"
  AWS_LAMBDA_MAX_CONCURRENCY=$concurrency "$bench" lambda --invocations "$requests" --concurrency "$concurrency" \
    --log "$work/cpu-concurrent.log" -- taskset -c 1 target/release/personalize-braze
done
