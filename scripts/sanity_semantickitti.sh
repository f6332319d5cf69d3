#!/usr/bin/env bash
# Sanity check on real data: semseg_small trained on the one real SemanticKITTI scan in
# ../shared/data/lidar alone (no augmentation, class weights from that scan's histogram) must memorise
# it: the IoU table at the end should show mIoU >= 0.85 over the classes present. ~5 min on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${SANITY_DIR:-runs/sanity_semantickitti}
build/lidartrain convert --format semantickitti --in ../shared/data/lidar/semantickitti --out "$OUT/data" --force
# Weights: min(10, max(1, sqrt(0.05 / share of points))) per training id, from `lidartrain inspect`.
OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} build/lidartrain train --config configs/semseg_small.ini \
  --data "$OUT/data" --data.val "$OUT/data" --train.steps 800 --train.batch_size 1 --train.augment false \
  --train.lr 0.005 --train.class_weights 0,1.9,10,1,1,1,6,1,1,1,8.3,1,1,1.65,3.3,1,1.2,1,3.8,2.3 \
  --log.every 100 --run-dir "$OUT/run" --resume none
