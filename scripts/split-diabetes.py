#!/usr/bin/env python3
"""Split scikit-learn's copy of the diabetes data (442 patients, 10 baseline
variables, a quantitative measure of disease progression one year later)
into testdata/diabetes/: a held-out test.csv (20 %) and three site files
skewed by age (eu-paris the youngest third of the rest, us-boston the
middle, sg-singapore the oldest), for regression (`model: {type: linreg}`).

Usage:
    apt-get download python3-sklearn && dpkg -x python3-sklearn_*.deb x
    D=x/usr/lib/python3/dist-packages/sklearn/datasets/data
    python3 scripts/split-diabetes.py $D/diabetes_data_raw.csv.gz $D/diabetes_target.csv.gz testdata/diabetes

Deterministic: rows are ordered by SHA-256 of (seed, line), not by a random
generator; feature cells are copied as they are in the source and the
target is written as an integer (every source value is whole).
"""
import gzip, hashlib, os, sys

SEED = b"1990"
COLUMNS = ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]
SITES = ["eu-paris", "us-boston", "sg-singapore"]

data, target, out = sys.argv[1], sys.argv[2], sys.argv[3]
xs = [l.split() for l in gzip.open(data, "rt") if l.strip()]
ys = [float(l) for l in gzip.open(target, "rt") if l.strip()]
assert len(xs) == len(ys) == 442, (len(xs), len(ys))
assert all(y == int(y) for y in ys)
rows = [(",".join(x), int(y), int(x[0])) for x, y in zip(xs, ys)]
rows.sort(key=lambda r: hashlib.sha256(SEED + r[0].encode()).hexdigest())
k = round(0.2 * len(rows))
test, rest = rows[:k], rows[k:]
rest.sort(key=lambda r: (r[2], hashlib.sha256(SEED + r[0].encode()).hexdigest()))
third = len(rest) // 3
parts = {SITES[0]: rest[:third], SITES[1]: rest[third:2 * third], SITES[2]: rest[2 * third:]}
os.makedirs(out, exist_ok=True)
header = ",".join(COLUMNS) + ",label\n"
for name, part in [("test", test)] + list(parts.items()):
    part = sorted(part, key=lambda r: hashlib.sha256(SEED + b"order" + r[0].encode()).hexdigest())
    with open(os.path.join(out, name + ".csv"), "w") as f:
        f.write(header)
        for line, y, _ in part:
            f.write(f"{line},{y}\n")
    ages = [r[2] for r in part]
    print(f"{name}.csv: {len(part)} rows, age {min(ages)}-{max(ages)}, mean target {sum(r[1] for r in part) / len(part):.1f}")
