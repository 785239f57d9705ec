#!/usr/bin/env bash
# The embedded model against the `implicit` library's tuned baselines on every dataset of
# BENCHMARKS.md's quality table: the four generated shapes and the real, public datasets.
#   benches/quality.sh [NAME ...]     (default: all; names as in the table)
# Prints one row a dataset: ours, popularity, the best three peers, NDCG@10 with coverage, and
# ours ÷ the best. Needs Python 3 (the pinned tools go into a virtualenv outside the repository)
# and, for the supermarket dataset, Debian's apt (the data comes from the weka package).
set -euo pipefail
cd "$(dirname "$0")/.."

venv=$(tests/python-tools benches/requirements.txt)
cargo build -q --release -p evaluate
cargo build -q --release --example generate-data

generated=target/bench-data/generated
real=target/bench-data/real
make() { # NAME ARGS...: a generated dataset, once (the same arguments make the same file)
  local name=$1
  shift
  [ -e "$generated/$name/interactions.csv" ] ||
    target/release/examples/generate-data "$@" --out "$generated/$name" >/dev/null
}
make years --items 20000 --users 8000 --interactions 200000 --days 1278 --walk 70 --session 12 --skew 0.9 --seed 21
make skew --items 3000 --users 20000 --interactions 300000 --days 180 --skew 1.6 --seed 33
make sessions --items 5000 --users 4000 --interactions 200000 --days 365 --session 30 --walk 40 --seed 45

declare -A file=(
  [sample]=examples/data/interactions.csv
  [years]=$generated/years/interactions.csv
  [skew]=$generated/skew/interactions.csv
  [sessions]=$generated/sessions/interactions.csv
  [movielens-small]=$real/movielens-small/interactions.csv
  [movielens-100k]=$real/movielens-100k/interactions.csv
  [supermarket]=$real/supermarket/interactions.csv
  [insteval]=$real/insteval/interactions.csv
)
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(sample years skew sessions movielens-small movielens-100k supermarket insteval)
for name in "${names[@]}"; do
  [ -n "${file[$name]:-}" ] || { echo "quality.sh: no dataset named $name" >&2; exit 2; }
  if [ ! -e "${file[$name]}" ]; then
    "$venv/bin/python" benches/real-data.py "$name" >&2
  fi
done

echo "| dataset | ours: NDCG@10 (coverage) | popularity | best three \`implicit\` models | ours ÷ best |"
echo "|---|---:|---:|---|---:|"
for name in "${names[@]}"; do
  "$venv/bin/python" benches/peers.py "${file[$name]}" --row "$name"
done
