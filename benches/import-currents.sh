#!/usr/bin/env bash
# Measures import-currents on one core: a Currents Purchase export of N records (one deflate
# file, as fastavro writes it) into a fresh interactions CSV, and the peak memory, which should
# not grow with the file. Needs Python 3 (fastavro is installed by tests/python-tools).
#   benches/import-currents.sh [RECORDS...]   (default: 100000 1000000)
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -gt 0 ] || set -- 100000 1000000
python=$(tests/python-tools tests/currents/requirements.txt)/bin/python
cargo build -q --release -p import-currents
work=target/bench-currents
for records in "$@"; do
  export_dir="$work/export-$records"
  [ -d "$export_dir" ] || "$python" tests/currents/make-export.py bench "$export_dir" "$records"
  rm -f "$work/interactions-$records.csv" "$work/interactions-$records.csv.state.json"
  bytes=$(du -sb "$export_dir" | cut -f1)
  echo "== $records purchases, $bytes bytes of Avro"
  taskset -c 0 /usr/bin/time -f "peak RSS %M KB, %e s wall, %U s user" \
    target/release/import-currents "$export_dir" --output "$work/interactions-$records.csv"
done
