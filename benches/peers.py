#!/usr/bin/env python3
"""The embedded recommender next to the field's standard baselines, on the same split.

usage: benches/peers.py INTERACTIONS_CSV [--k 10] [--holdout 0.2] [--evaluate BIN] [--json]
                        [--row NAME]

Trains the `implicit` library's item-item models (CosineRecommender, BM25Recommender,
TFIDFRecommender, each with K = 20, 50, 100 and 200 neighbours) and AlternatingLeastSquares (8,
16, 32, 64 and 128 factors, regularization 0.1, 1 and 10, confidence scaled by alpha 1 and 10: the
best of them is the bar) on exactly the split `evaluate` uses: the newest fraction of each user's events (at least
one, never all) held out, users with one event training only, and only items new to the user
counting as hits. Each model recommends k items the user has not interacted with. The metrics
are `evaluate`'s definitions (src/evaluation.rs): precision@k, NDCG@k, MRR@k averaged over users
with something to find, and coverage of the interactions' distinct items. The embedded model's
and popularity's rows come from the release `evaluate` binary (--json), run on the same file.

Run it from a virtualenv outside the repository with the pinned tools:

    venv=$(tests/python-tools benches/requirements.txt)   # implicit, numpy, scipy: pinned
    cargo build --release -p evaluate
    "$venv/bin/python" benches/peers.py examples/data/interactions.csv
"""

import argparse
import csv
import json
import math
import os
import subprocess
import sys
import time

# One BLAS thread per process: implicit parallelises itself, and nested threading only slows it.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import warnings  # noqa: E402

import numpy as np  # noqa: E402
import scipy.sparse as sparse  # noqa: E402
from implicit.als import AlternatingLeastSquares  # noqa: E402
from implicit.nearest_neighbours import (  # noqa: E402
    BM25Recommender,
    CosineRecommender,
    TFIDFRecommender,
)

# implicit notes each sparse-format conversion it makes; they are not results.
warnings.filterwarnings("ignore", module="implicit")


def read_interactions(path):
    """(user, item, timestamp) in file order; the header names the columns, in any order."""
    with open(path, newline="", encoding="utf-8") as f:
        rows = csv.reader(f)
        header = [name.strip().upper() for name in next(rows)]
        user, item, when = (header.index(c) for c in ("USER_ID", "ITEM_ID", "TIMESTAMP"))
        return [(r[user], r[item], int(r[when])) for r in rows if r]


def split(interactions, fraction):
    """`evaluation::split` with `Split::Holdout` and seen items left out of the truth sets."""
    by_user = {}
    for user, item, when in interactions:
        by_user.setdefault(user, []).append((when, item))
    training, test = [], []
    for user, events in by_user.items():
        events.sort(key=lambda e: e[0])  # stable: ties keep file order
        if len(events) < 2:
            first_test = len(events)
        else:
            held = math.floor(len(events) * fraction + 0.5)  # Rust's round(): half away from zero
            first_test = len(events) - min(max(held, 1), len(events) - 1)
        seen = {item for _, item in events[:first_test]}
        truth = {item for _, item in events[first_test:]} - seen
        training.extend((user, item) for _, item in events[:first_test])
        if truth:
            test.append((user, truth))
    test.sort()
    return training, test


def scores(recommended, test, k, catalog):
    """Mean precision@k, NDCG@k, MRR@k over users with something to find, and coverage."""
    sums = [0.0, 0.0, 0.0]
    shown = set()
    for (user, truth), items in zip(test, recommended):
        top = items[:k]
        shown.update(top)
        hits = [p for p, item in enumerate(top) if item in truth and item not in top[:p]]
        ideal = sum(1 / math.log2(p + 2) for p in range(min(len(truth), k)))
        sums[0] += len(hits) / k
        sums[1] += sum(1 / math.log2(p + 2) for p in hits) / ideal
        sums[2] += 1 / (hits[0] + 1) if hits else 0.0
    users = len(test)
    return {
        "users": users,
        "precision_at_k": sums[0] / users,
        "ndcg_at_k": sums[1] / users,
        "mrr_at_k": sums[2] / users,
        "coverage": len(shown & catalog) / len(catalog),
    }


def peers():
    """The models compared: name → a fresh model."""
    models = {}
    for k in (20, 50, 100, 200):
        models[f"implicit Cosine K={k}"] = lambda k=k: CosineRecommender(K=k)
        models[f"implicit BM25 K={k}"] = lambda k=k: BM25Recommender(K=k)
        models[f"implicit TFIDF K={k}"] = lambda k=k: TFIDFRecommender(K=k)
    for factors in (8, 16, 32, 64, 128):
        for regularization in (0.1, 1, 10):
            for alpha in (1, 10):
                name = f"implicit ALS f={factors} reg={regularization} alpha={alpha}"
                models[name] = lambda f=factors, r=regularization, a=alpha: AlternatingLeastSquares(
                    factors=f, regularization=r, alpha=a, iterations=15, random_state=7
                )
    return models


def run_implicit(make, training, test, k):
    users = {u: i for i, u in enumerate(dict.fromkeys(u for u, _ in training))}
    items = {it: i for i, it in enumerate(dict.fromkeys(it for _, it in training))}
    rows = np.fromiter((users[u] for u, _ in training), dtype=np.int32)
    cols = np.fromiter((items[it] for _, it in training), dtype=np.int32)
    # Each interaction counts once: a user who viewed an item three times weighs it three.
    matrix = sparse.csr_matrix(
        (np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(len(users), len(items))
    )
    matrix.sum_duplicates()
    model = make()
    model.fit(matrix, show_progress=False)
    item_ids = np.array(list(items))
    ids = np.array([users[u] for u, _ in test])
    found, _ = model.recommend(ids, matrix[ids], N=k, filter_already_liked_items=True)
    return [[item_ids[i] for i in row if i >= 0] for row in found]


def run_ours(binary, path, k, fraction):
    output = subprocess.run(
        [binary, "--interactions", path, "--k", str(k), "--holdout", str(fraction), "--json"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    report = json.loads(output)
    names = {"embedded": "embedded (ours)", "popularity": "popularity (ours)"}
    return [(names.get(b["backend"], b["backend"]), b["scores"], b["seconds"]) for b in report["backends"]]


def summary_row(name, rows):
    """| NAME | ours | popularity | the best three peers | ours ÷ best |: NDCG@k (coverage)."""
    by_name = {n: s for n, s, _ in rows}
    peers = sorted(
        ((n, s) for n, s, _ in rows if n.startswith("implicit")), key=lambda r: -r[1]["ndcg_at_k"]
    )

    def cell(s):
        return f"{s['ndcg_at_k']:.4f} ({s['coverage']:.2f})"

    ours = by_name["embedded (ours)"]
    best = "; ".join(f"{n.removeprefix('implicit ')}: {cell(s)}" for n, s in peers[:3])
    ratio = ours["ndcg_at_k"] / peers[0][1]["ndcg_at_k"]
    return f"| {name} | {cell(ours)} | {cell(by_name['popularity (ours)'])} | {best} | {ratio:.3f} |"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("interactions")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--holdout", type=float, default=0.2)
    parser.add_argument("--evaluate", default="target/release/evaluate")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--row", metavar="NAME", help="print one summary row for BENCHMARKS.md")
    args = parser.parse_args()

    interactions = read_interactions(args.interactions)
    catalog = {item for _, item, _ in interactions}
    training, test = split(interactions, args.holdout)
    rows = run_ours(args.evaluate, args.interactions, args.k, args.holdout)
    for name, make in peers().items():
        started = time.perf_counter()
        recommended = run_implicit(make, training, test, args.k)
        rows.append((name, scores(recommended, test, args.k, catalog), time.perf_counter() - started))
    ours = {name: s for name, s, _ in rows}["embedded (ours)"]
    if ours["users"] != len(test):
        sys.exit(f"peers.py: evaluate tested {ours['users']} users, this split {len(test)}")

    if args.json:
        print(json.dumps([{"model": n, "seconds": t, **s} for n, s, t in rows], indent=2))
        return
    if args.row:
        print(summary_row(args.row, rows))
        return
    k = args.k
    print(
        f"{len(interactions)} interactions, {len(training)} for training; {len(test)} test users; "
        f"{len(catalog)} items; holdout {args.holdout}"
    )
    print(f"| model | precision@{k} | NDCG@{k} | MRR@{k} | coverage | seconds |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, s, seconds in sorted(rows, key=lambda r: -r[1]["ndcg_at_k"]):
        print(
            f"| {name} | {s['precision_at_k']:.4f} | {s['ndcg_at_k']:.4f} | {s['mrr_at_k']:.4f} "
            f"| {s['coverage']:.4f} | {seconds:.1f} |"
        )
    best = max((r for r in rows if r[0].startswith("implicit")), key=lambda r: r[1]["ndcg_at_k"])
    print(
        f"\nembedded / best implicit ({best[0]}) NDCG@{k}: "
        f"{ours['ndcg_at_k'] / best[1]['ndcg_at_k']:.3f}"
    )


if __name__ == "__main__":
    main()
