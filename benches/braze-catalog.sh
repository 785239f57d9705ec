#!/usr/bin/env bash
# load-items into a Braze Catalog: items per second into the project's fake Catalogs API, which
# keeps Braze's 50 items a request and its 16,000 requests a minute for the item endpoints; then
# the same file again, which sends nothing. Items shaped like a shop's (300-500 character
# descriptions).
#   benches/braze-catalog.sh [ITEMS]   (default 20000)
set -euo pipefail
cd "$(dirname "$0")/.."
items=${1:-20000}
cargo build --release --quiet -p load-items && cargo build --release --quiet --example fake-braze-catalogs
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$work"' EXIT
port=$((20000 + RANDOM % 20000))
target/release/examples/fake-braze-catalogs --port "$port" --key bench-key > "$work/fake.log" &
sleep 0.5
python3 - "$items" "$work/items.csv" <<'PY'
import csv, sys
n, path = int(sys.argv[1]), sys.argv[2]
with open(path, "w", newline="") as f:
    out = csv.writer(f)
    out.writerow(["ITEM_ID", "NAME", "PRICE", "CATEGORY", "DESCRIPTION"])
    for i in range(n):
        out.writerow([f"sku-{i:06d}", f"Weekend Boot {i} – Brown", f"{10 + i % 90}.99",
                      ["shoes", "bags", "shirts"][i % 3],
                      f"Item {i}: " + "Soft, breathable, made to last; wash cold, dry flat. " * (6 + i % 4)])
PY
for run in first again; do
  echo "== $items items, $run run"
  BRAZE_REST_ENDPOINT="http://127.0.0.1:$port" BRAZE_API_KEY=bench-key \
    /usr/bin/time -f "peak RSS %M KB, %e s elapsed" \
    target/release/load-items --braze-catalog shop --items "$work/items.csv"
done
