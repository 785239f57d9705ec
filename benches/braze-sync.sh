#!/usr/bin/env bash
# braze-sync's speed and memory: users per second into the fake Braze with the rate limit lifted,
# and peak memory on batch output files of 100,000 and 1,000,000 users (memory must not grow with
# the file). Count 10 items per user from the sample catalog.
#   benches/braze-sync.sh [USERS...]   (default: 100000 1000000)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet -p braze-sync && cargo build --release --quiet --example fake-braze
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$work"' EXIT
port=$((20000 + RANDOM % 20000))
target/release/examples/fake-braze --port "$port" --key bench-key > "$work/fake.log" &
sleep 0.5
for users in "${@:-100000 1000000}"; do
  for n in $users; do
    python3 - "$n" "$work/out-$n.json.out" <<'PY'
import csv, json, random, sys
n, path = int(sys.argv[1]), sys.argv[2]
ids = [r["ITEM_ID"] for r in csv.DictReader(open("examples/data/items.csv"))]
rng = random.Random(7)
with open(path, "w") as f:
    for u in range(n):
        ranked = rng.sample(ids, 25)
        f.write(json.dumps({"input": {"userId": f"user-{u}"}, "output": {"recommendedItems": ranked, "scores": [round(1 / (i + 1), 4) for i in range(25)]}, "error": None}) + "\n")
PY
    echo "== $n users ($(du -h "$work/out-$n.json.out" | cut -f1))"
    BRAZE_REST_ENDPOINT="http://127.0.0.1:$port" BRAZE_API_KEY=bench-key \
      /usr/bin/time -f "peak RSS %M KB, %e s elapsed, %U s user, %S s system" \
      target/release/braze-sync "$work/out-$n.json.out" --items examples/data/items.csv \
        --count 10 --rate off --concurrency 8 --checkpoint "$work/cp-$n"
    rm -f "$work/out-$n.json.out"
  done
done
curl -s "http://127.0.0.1:$port/stats"; echo
