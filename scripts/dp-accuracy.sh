#!/usr/bin/env bash
# Test accuracy of `federa demo` (breast cancer, logreg, the demo's
# settings) without DP and with DP-SGD at epsilon 1, 2, 4 and 8 at each
# site (delta 1e-5, clip 1): the median of 5 seeds each, as a Markdown
# table (docs/privacy.md). Usage: scripts/dp-accuracy.sh [SEEDS] [EXTRA DEMO FLAGS...]
# DP_NOISE=distributed measures distributed noise under secure aggregation
# (--dp-noise distributed, its demo defaults) and leaves out the row
# without DP (docs/secure-aggregation.md).
set -euo pipefail
cd "$(dirname "$0")/.."
seeds=${1:-5}
shift || true
make -s build
printf '| DP | test accuracy (median) | min | max | seeds |\n|---|---|---|---|---|\n'
levels=(none 1 2 4 8)
[[ ${DP_NOISE:-local} == distributed ]] && levels=(1 2 4 8)
for eps in "${levels[@]}"; do
  accs=()
  for seed in $(seq 1 "$seeds"); do
    flags=(--seed "$seed" -o json "$@")
    [[ $eps != none ]] && flags+=(--dp-epsilon "$eps" --dp-noise "${DP_NOISE:-local}")
    state=$(mktemp -d)
    acc=$(./bin/federa demo --state "$state" "${flags[@]}" 2>/dev/null | tail -1 |
      /usr/bin/python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["test_accuracy"] if d["status"]=="succeeded" else "failed")')
    rm -rf "$state"
    accs+=("$acc")
  done
  /usr/bin/python3 - "$eps" "${accs[@]}" <<'PY'
import statistics, sys
eps, accs = sys.argv[1], sys.argv[2:]
ok = [float(a) for a in accs if a != "failed"]
label = "none" if eps == "none" else f"ε = {eps}"
if ok:
    print(f"| {label} | {statistics.median(ok):.4f} | {min(ok):.4f} | {max(ok):.4f} | {len(ok)} of {len(accs)} succeeded |")
else:
    print(f"| {label} | — | — | — | 0 of {len(accs)} succeeded |")
PY
done
