#!/usr/bin/env bash
# Sanity check on real data: bevdet_small (at KITTI's point range: the front 69.12 m × 79.36 m, pillars
# 0.32 m) trained on the three real KITTI frames in ../shared/data/lidar alone, without augmentation,
# must find their boxes again: the table at the end should show BEV AP at IoU 0.5 >= 0.9 for Car,
# Pedestrian and Cyclist on those frames. A few minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${SANITY_DIR:-runs/sanity_kitti}
STEPS=${SANITY_STEPS:-300}
build/lidartrain convert --format kitti --in ../shared/data/lidar/kitti --out "$OUT/data" --force
build/lidartrain inspect "$OUT/data"
OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} build/lidartrain train --config configs/bevdet_small.ini \
  --model.point_range 0,-39.68,-3,69.12,39.68,1 --data "$OUT/data" --train.steps "$STEPS" --train.batch_size 3 \
  --train.augment false --train.lr 0.003 --log.every 25 --checkpoint.every 0 --run-dir "$OUT/run" --resume none
CKPT="$OUT/run/checkpoints/$(cat "$OUT/run/checkpoints/LATEST")"
build/lidartrain eval --checkpoint "$CKPT" --data "$OUT/data" --iou 0.5 --json "$OUT/eval_iou05.json"
build/lidartrain eval --checkpoint "$CKPT" --data "$OUT/data" --json "$OUT/eval.json"
build/lidartrain infer --checkpoint "$CKPT" --input ../shared/data/lidar/kitti/training/velodyne/000001.bin \
  --calib ../shared/data/lidar/kitti/training/calib/000001.txt
