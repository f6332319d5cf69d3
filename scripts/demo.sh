#!/usr/bin/env bash
# The demo: set up, generate a synthetic LiDAR dataset on 2 ranks, convert the real sample frames,
# train both models on the synthetic set on 2 ranks (one OpenMP thread each) — semseg_small, then
# bevdet_small — evaluate each on synthetic frames of another seed, segment the real SemanticKITTI scan
# and detect the objects of a real KITTI frame.
#   DEMO_DIR (default ./demo)   DEMO_FRAMES (default 128)
#   DEMO_STEPS (semseg, default 600, ~5 min on 2 cores)   DEMO_BEVDET_STEPS (default 400, ~4 min)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
LT=build/lidartrain
DEMO=${DEMO_DIR:-demo}
FRAMES=${DEMO_FRAMES:-128}
STEPS=${DEMO_STEPS:-600}
BEVDET_STEPS=${DEMO_BEVDET_STEPS:-400}
DATA=../shared/data/lidar
mkdir -p "$DEMO"

echo "== synthetic training and validation sets (2 ranks; validation from another seed)"
mpirun -np 2 "$LT" synth --frames "$FRAMES" --seed 1 --out "$DEMO/synth_train" --force
mpirun -np 2 "$LT" synth --frames $((FRAMES / 4)) --seed 2 --out "$DEMO/synth_val" --force
echo
echo "== what the training set holds"
mpirun -np 2 "$LT" inspect "$DEMO/synth_train" --json "$DEMO/synth_train.json"

if [ -d "$DATA/kitti" ]; then
  echo
  echo "== the real sample frames, converted"
  "$LT" convert --format kitti --in "$DATA/kitti" --out "$DEMO/kitti" --force
  "$LT" convert --format semantickitti --in "$DATA/semantickitti" --out "$DEMO/semantickitti" --force
  "$LT" convert --format nuscenes --in "$DATA/nuscenes" --out "$DEMO/nuscenes" --force
  "$LT" inspect "$DEMO/semantickitti"
  "$LT" inspect "$DEMO/kitti"
fi
echo
echo "== training semseg_small for $STEPS steps on 2 ranks"
rm -rf "$DEMO/run"
# Each rank one thread; the gradient all-reduce overlaps backward (small buckets, so the timeline shows it).
OMP_NUM_THREADS=1 mpirun -np 2 "$LT" train --config configs/semseg_small.ini --data "$DEMO/synth_train" --train.steps "$STEPS" --train.batch_size 1 --log.every 25 \
  --checkpoint.every 0 --train.bucket_mb 0.5 --log.timeline "$DEMO/run/timeline.json" --log.prom_file "$DEMO/run/lidartrain.prom" \
  --run-dir "$DEMO/run"
CKPT="$DEMO/run/checkpoints/$(cat "$DEMO/run/checkpoints/LATEST")"
echo
echo "== evaluation on the validation frames (seed 2)"
mpirun -np 2 "$LT" eval --checkpoint "$CKPT" --data "$DEMO/synth_val" --json "$DEMO/eval.json"
if [ -f "$DATA/semantickitti/velodyne/000000.bin" ]; then
  echo
  echo "== segmenting the real SemanticKITTI scan (a model trained on synthetic data only)"
  "$LT" infer --checkpoint "$CKPT" --input "$DATA/semantickitti/velodyne/000000.bin" --out "$DEMO/000000.label" --bench 5
fi
echo
echo
echo "== the checkpoint"
"$LT" inspect "$CKPT"

echo
echo "== training bevdet_small (CenterPoint on PointPillars) for $BEVDET_STEPS steps on 2 ranks"
rm -rf "$DEMO/run_bevdet"
OMP_NUM_THREADS=1 mpirun -np 2 "$LT" train --config configs/bevdet_small.ini --data "$DEMO/synth_train" \
  --train.steps "$BEVDET_STEPS" --train.batch_size 1 --log.every 25 --checkpoint.every 0 --run-dir "$DEMO/run_bevdet"
BEVDET_CKPT="$DEMO/run_bevdet/checkpoints/$(cat "$DEMO/run_bevdet/checkpoints/LATEST")"
echo
echo "== detection on the validation frames (seed 2): BEV AP (R40) and centre-distance AP"
mpirun -np 2 "$LT" eval --checkpoint "$BEVDET_CKPT" --data "$DEMO/synth_val" --json "$DEMO/eval_bevdet.json"
if [ -f "$DATA/kitti/training/velodyne/000001.bin" ]; then
  echo
  echo "== boxes in a real KITTI frame as label_2 lines (a model trained on synthetic data only, briefly)"
  "$LT" infer --checkpoint "$BEVDET_CKPT" --input "$DATA/kitti/training/velodyne/000001.bin" \
    --calib "$DATA/kitti/training/calib/000001.txt" --out "$DEMO/000001_label_2.txt"
  head -5 "$DEMO/000001_label_2.txt"
  "$LT" infer --checkpoint "$BEVDET_CKPT" --input "$DATA/kitti/training/velodyne/000001.bin" --bench 5
fi
echo
echo "demo: datasets, run directories (config.ini, metrics.jsonl, checkpoints/, timeline.json: open it in"
echo "Perfetto or chrome://tracing, lidartrain.prom) and outputs in $DEMO/"
