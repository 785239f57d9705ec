#!/usr/bin/env python3
"""Our own time per request, from the service's request lines (EMF): Latency minus upstream time.

    benches/own-time.py LOG [--catalog-is-upstream]

Upstream time is the Personalize call (`RecommenderLatency`), plus the catalog call (`CatalogLatency`)
with --catalog-is-upstream (a cold cache, where it is a DynamoDB call; warm, it is cache lookups,
our own). Prints the statuses seen and p50 / p99 of our own time.
"""
import json
import sys

path = sys.argv[1]
catalog_is_upstream = "--catalog-is-upstream" in sys.argv[2:]
own, statuses = [], {}
for line in open(path):
    try:
        event = json.loads(line)
    except ValueError:
        continue
    if event.get("message") != "request":
        continue
    statuses[event["status"]] = statuses.get(event["status"], 0) + 1
    upstream = event.get("RecommenderLatency") or 0
    if catalog_is_upstream:
        upstream += event.get("CatalogLatency") or 0
    own.append(event["Latency"] - upstream)
if not own:
    sys.exit(f"{path}: no request lines")
own.sort()


def pick(q):
    return own[min(len(own) - 1, int(q * len(own)))] * 1000


print(
    f"statuses {statuses}; our own time per request: p50 {pick(0.5):.0f} µs, "
    f"p99 {pick(0.99):.0f} µs over {len(own)} requests"
)
