#!/usr/bin/env bash
# Load balancing, measured: trains the same run under mpirun -np 2 with each strategy and prints the
# straggler imbalance (max/mean of the ranks' compute time) and samples/s of each, then what
# `lidartrain balance` predicts for larger rank counts.
#   scripts/bench_balance.sh [OUT_DIR]            (default runs/bench_balance)
#   BENCH_CONFIG (configs/semseg_points.ini: a frame's cost follows its points)   BENCH_STEPS (150)
#   BENCH_BATCH (2 frames per rank)   BENCH_DATA (default: synth --frames 512 --seed 1, skew 1, made once)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/bench_balance}
CONFIG=${BENCH_CONFIG:-configs/semseg_points.ini}
STEPS=${BENCH_STEPS:-150}
BATCH=${BENCH_BATCH:-2}
LT=${LIDARTRAIN:-build/lidartrain}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
mkdir -p "$OUT"
DATA=${BENCH_DATA:-$OUT/data}
[ -d "$DATA" ] || mpirun -np 2 "$LT" synth --frames 512 --seed 1 --out "$DATA" >/dev/null

run() {  # name, extra train options...
  local name=$1
  shift
  rm -rf "$OUT/$name"
  OMP_NUM_THREADS=1 mpirun -np 2 "$LT" train --config "$CONFIG" --data "$DATA" --train.steps "$STEPS" \
    --train.batch_size "$BATCH" --train.threads 1 --log.every "$STEPS" --checkpoint.every 0 --data.val "" \
    --run-dir "$OUT/$name" "$@" >/dev/null
}
run none --train.balance none
run bucket --train.balance bucket
run lpt --train.balance lpt
run lpt_refit --train.balance lpt --train.cost_refit 10

echo "measured: mpirun -np 2, $CONFIG, $BATCH frames per rank, $STEPS steps (first 10 left out), $DATA"
/usr/bin/python3 - "$OUT" <<'PY'
import json, os, sys
out = sys.argv[1]
rows = {}
for name in ("none", "bucket", "lpt", "lpt_refit"):
    steps = [json.loads(l) for l in open(os.path.join(out, name, "metrics.jsonl"))]
    steps = [s for s in steps if "step_s" in s][10:]
    batch = steps[0]["samples_per_s"] * steps[0]["step_s"]["max"]
    step_s = sum(s["step_s"]["max"] for s in steps) / len(steps)
    compute = sum(s["compute_s"]["max"] for s in steps) / len(steps)
    rows[name] = dict(imbalance=sum(s["imbalance"] for s in steps) / len(steps), samples=batch / step_s,
                      compute=compute, model=steps[-1]["cost_model"])
print("| strategy | imbalance max/mean | samples/s | vs none | slowest rank's compute s/step |")
print("|---|---|---|---|---|")
for name, r in rows.items():
    gain = 100 * (r["samples"] / rows["none"]["samples"] - 1)
    print(f"| {name} | {r['imbalance']:.3f} | {r['samples']:.3f} | {gain:+.1f} % | {r['compute']:.3f} |")
m = rows["lpt_refit"]["model"]
print(f"\nlpt_refit's cost model at the end: {m[0]:.3g} s per point + {m[1]:.3g} s per frame")
PY
echo
echo "predicted by lidartrain balance (stored cost), $BATCH frames per rank:"
"$LT" balance --data "$DATA" --ranks 2,8,64,512 --batch "$BATCH"
