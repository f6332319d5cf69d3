#!/usr/bin/env bash
# Load balancing, measured: trains the same run under mpirun -np 2 with each strategy and prints the
# straggler imbalance (max/mean of the ranks' compute time) and samples/s of each, then what
# `lidartrain balance` predicts for larger rank counts. The strategies run in turn, BENCH_ROUNDS times
# over (each round continuing the same run from its checkpoint), so that this VM's slow drifts in speed
# (±10 % between runs minutes apart) fall on every strategy alike.
#   scripts/bench_balance.sh [OUT_DIR]            (default runs/bench_balance)
#   BENCH_CONFIG (configs/semseg_points.ini: a frame's cost follows its points)   BENCH_STEPS (40 per round)
#   BENCH_ROUNDS (4)   BENCH_BATCH (2 frames per rank)
#   BENCH_DATA (default: synth --frames 512 --seed 1, skew 1, made once)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/bench_balance}
CONFIG=${BENCH_CONFIG:-configs/semseg_points.ini}
STEPS=${BENCH_STEPS:-40}
ROUNDS=${BENCH_ROUNDS:-4}
BATCH=${BENCH_BATCH:-2}
LT=${LIDARTRAIN:-build/lidartrain}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
mkdir -p "$OUT"
DATA=${BENCH_DATA:-$OUT/data}
[ -d "$DATA" ] || mpirun -np 2 "$LT" synth --frames 512 --seed 1 --out "$DATA" >/dev/null

run() {  # name round, extra train options...: steps up to round·STEPS, resuming the previous round
  local name=$1 round=$2
  shift 2
  OMP_NUM_THREADS=1 mpirun -np 2 "$LT" train --config "$CONFIG" --data "$DATA" --train.steps $((round * STEPS)) \
    --train.batch_size "$BATCH" --train.threads 1 --log.every "$STEPS" --checkpoint.every 0 --checkpoint.keep 1 \
    --data.val "" --run-dir "$OUT/$name" "$@" >/dev/null
}
rm -rf "$OUT"/{none,bucket,lpt,lpt_refit}
for round in $(seq 1 "$ROUNDS"); do
  run none "$round" --train.balance none
  run bucket "$round" --train.balance bucket
  run lpt "$round" --train.balance lpt
  run lpt_refit "$round" --train.balance lpt --train.cost_refit 10
done

echo "measured: mpirun -np 2, $CONFIG, $BATCH frames per rank, $ROUNDS rounds of $STEPS steps (first 5 of each left out), $DATA"
/usr/bin/python3 - "$OUT" <<'PY'
import json, os, sys
out = sys.argv[1]
rows = {}
for name in ("none", "bucket", "lpt", "lpt_refit"):
    records = [json.loads(l) for l in open(os.path.join(out, name, "metrics.jsonl"))]
    # Each round starts with a "resumed" line (or none, the first): leave out its first 5 steps.
    steps, since_start = [], 0
    for r in records:
        if "resumed" in r:
            since_start = 0
        elif "step_s" in r:
            since_start += 1
            if since_start > 5:
                steps.append(r)
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
