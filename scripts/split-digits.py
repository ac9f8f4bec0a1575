#!/usr/bin/env python3
"""Split scikit-learn's copy of the UCI optical digits (8x8) into
testdata/digits-skew/: a stratified held-out test.csv (20 % of each class)
and five label-skewed site files, each holding only four of the ten classes
(site i: classes 2i, 2i+1, 2i+2, 2i+3 mod 10; every class at two sites, its
rows split evenly between them). No site alone can name more than four
digits, so a federated model that beats every site alone by a wide margin
shows federation at work.

Usage:
    apt-get download python3-sklearn && dpkg -x python3-sklearn_*.deb x
    python3 scripts/split-digits.py \
        x/usr/lib/python3/dist-packages/sklearn/datasets/data/digits.csv.gz testdata/digits-skew

Deterministic: rows are ordered by SHA-256 of (seed, line), not by a random
generator, and cells are copied as they are in the source.
"""
import gzip, hashlib, os, sys

SEED = b"1995"
NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
SITES = ["eu-paris", "us-boston", "sg-singapore", "eu-berlin", "us-chicago"]

src, out = sys.argv[1], sys.argv[2]
rows = [l.strip() for l in gzip.open(src, "rt") if l.strip()]
by_class = {c: [] for c in range(10)}
for l in rows:
    cells = l.split(",")
    by_class[int(cells[-1])].append(",".join(cells[:-1]))
order = lambda line: hashlib.sha256(SEED + line.encode()).hexdigest()
header = ",".join(f"px{r}_{c}" for r in range(8) for c in range(8)) + ",label\n"
test, sites = [], {s: [] for s in SITES}
for c in range(10):
    lines = sorted(by_class[c], key=order)
    k = round(0.2 * len(lines))
    test += [(l, c) for l in lines[:k]]
    rest = lines[k:]
    holders = [SITES[i] for i in range(5) if c in {(2 * i + j) % 10 for j in range(4)}]
    half = len(rest) // 2
    sites[holders[0]] += [(l, c) for l in rest[:half]]
    sites[holders[1]] += [(l, c) for l in rest[half:]]
os.makedirs(out, exist_ok=True)
def write(name, data):
    data.sort(key=lambda x: order(x[0]))
    with open(os.path.join(out, name), "w") as f:
        f.write(header)
        for l, c in data:
            f.write(f"{l},{NAMES[c]}\n")
    print(name, len(data), "rows, classes", sorted({NAMES[c] for _, c in data}, key=NAMES.index))
write("test.csv", test)
for s in SITES:
    write(s + ".csv", sites[s])
