#!/usr/bin/env bash
# Runs every libFuzzer target (tests/fuzz/fuzz_target.cpp: the parsers of outside input) for a bounded
# number of inputs, seeded with the real frames in ../shared/data/lidar (scans cut to their first 256
# points, labels, KITTI label_2 and calib files, the label-map YAMLs), the configs, and a tiny dataset
# shard and checkpoint made here. -seed=1 makes a run reproducible: the same binary and budget try the
# same inputs. A crash, a sanitizer report, a leak or a timeout of any target fails the script (its
# input is kept in the work directory). Prints executions, seconds and corpus growth per target.
#   scripts/fuzz.sh [BUILD_DIR (default build-sanitize)] [RUNS per target (default $FUZZ_RUNS or 20000)]
#   FUZZ_TARGETS="point_file …" picks targets (default all ten). CI (scripts/test.sh) runs all ten.
# BUILD_DIR is configured with -DLIDARTRAIN_FUZZ=ON and clang (scripts/test.sh does it).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build-sanitize}
RUNS=${2:-${FUZZ_RUNS:-20000}}
DATA=${LIDARTRAIN_SHARED_DATA:-../shared/data/lidar}
LT=${LIDARTRAIN:-build/lidartrain}  # any lidartrain build makes the HDF5 seeds
WORK=$(mktemp -d /tmp/lidartrain_fuzz.XXXXXX)
keep=0
trap '[ "$keep" -eq 1 ] || rm -rf "$WORK"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
export LSAN_OPTIONS=suppressions=$PWD/tests/lsan.supp

seed() {  # seed TARGET FILE [BYTES]: a copy (or its first BYTES) into the target's corpus
  mkdir -p "$WORK/corpus/$1"
  if [ -n "${3:-}" ]; then head -c "$3" "$2" >"$WORK/corpus/$1/$(basename "$2")"; else cp "$2" "$WORK/corpus/$1/"; fi
}
for f in "$DATA"/kitti/training/velodyne/*.bin "$DATA"/semantickitti/velodyne/*.bin "$DATA"/nuscenes/samples/LIDAR_TOP/*.bin; do
  seed point_file "$f" 4096
done
for f in "$DATA"/semantickitti/labels/*.label; do seed label_file "$f" 1024; done
for f in "$DATA"/kitti/training/label_2/*.txt; do seed kitti_label "$f"; done
for f in "$DATA"/kitti/training/calib/*.txt; do seed kitti_calib "$f"; done
for f in "$DATA"/config/*.yaml; do seed label_map "$f"; done
for f in configs/*.ini; do seed ini_config "$f"; done
# A one-frame dataset of 256 labelled points (a real scan's start) and a checkpoint of a tiny model.
mkdir -p "$WORK/raw/velodyne" "$WORK/raw/labels"
first_scan=$(ls "$DATA"/semantickitti/velodyne/*.bin | head -n 1)
head -c 4096 "$first_scan" >"$WORK/raw/velodyne/000000.bin"
head -c 1024 "$DATA/semantickitti/labels/$(basename "$first_scan" .bin).label" >"$WORK/raw/labels/000000.label"
"$LT" convert --format semantickitti --in "$WORK/raw" --out "$WORK/shard" >/dev/null
seed dataset_shard "$WORK/shard/shard-00000.h5"
"$LT" synth --frames 2 --seed 1 --out "$WORK/synth" >/dev/null
"$LT" train --config configs/semseg_small.ini --data "$WORK/synth" --train.steps 1 --train.batch_size 1 \
  --model.voxel_size 12.8 --model.point_channels 2,2 --model.bev_channels 2,2,2 --model.head_channels 2 \
  --run-dir "$WORK/run" >/dev/null
seed checkpoint "$WORK/run/checkpoints/ckpt-00000001.h5"
for f in "$WORK"/run/events.out.tfevents.*; do seed tfevents "$f"; done
# A KITTI shard with its calibration (/calib), 256 points of a real frame.
mkdir -p "$WORK/rawk/velodyne"
cp -r "$DATA/kitti/training/label_2" "$DATA/kitti/training/calib" "$WORK/rawk/"
for f in "$DATA"/kitti/training/velodyne/*.bin; do head -c 4096 "$f" >"$WORK/rawk/velodyne/$(basename "$f")"; done
"$LT" convert --format kitti --in "$WORK/rawk" --out "$WORK/kshard" >/dev/null
cp "$WORK/kshard/shard-00000.h5" "$WORK/corpus/dataset_shard/kitti-shard-00000.h5"
# Predictions files of both models (infer --data over two synthetic frames) and their box text.
"$LT" infer --checkpoint "$WORK/run/checkpoints/ckpt-00000001.h5" --data "$WORK/shard" --out "$WORK/pred_s" >/dev/null
mkdir -p "$WORK/corpus/predictions"
cp "$WORK/pred_s/predictions/rank-00000-of-00001.h5" "$WORK/corpus/predictions/semseg.h5"
"$LT" train --config configs/bevdet_small.ini --data "$WORK/synth" --train.steps 1 --train.batch_size 1 \
  --model.pillar_size 2.56 --model.pfn_channels 2 --model.backbone_layers 1,1,1 --model.backbone_channels 2,2,2 \
  --model.upsample_channels 2 --model.head_channels 2 --run-dir "$WORK/brun" >/dev/null
"$LT" infer --checkpoint "$WORK/brun/checkpoints/ckpt-00000001.h5" --data "$WORK/kshard" --out "$WORK/pred_b" >/dev/null
cp "$WORK/pred_b/predictions/rank-00000-of-00001.h5" "$WORK/corpus/predictions/bevdet.h5"
for f in "$WORK"/pred_b/boxes/*.txt; do seed boxes_text "$f"; done

status=0
printf "%-14s %9s %8s %10s %8s\n" target runs seconds "exec/s" corpus
for target in ${FUZZ_TARGETS:-point_file label_file kitti_label kitti_calib label_map ini_config dataset_shard checkpoint predictions boxes_text tfevents}; do
  corpus="$WORK/corpus/$target"
  before=$(ls "$corpus" | wc -l)
  start=$(date +%s.%N)
  # libhdf5 1.10.8 leaks inside calls that fail on a damaged file (H5Fopen → H5G_mkroot, H5Dopen2 →
  # H5D__layout_oh_read, …): the HDF5 targets suppress leaks allocated in libhdf5 and check instead that
  # no HDF5 object of ours is left open after each input (tests/fuzz/fuzz_target.cpp).
  supp=$PWD/tests/lsan.supp
  case $target in dataset_shard | checkpoint | predictions) supp=$PWD/tests/fuzz/lsan_hdf5.supp ;; esac
  if ! LSAN_OPTIONS=suppressions=$supp "$BUILD/tests/fuzz_$target" -seed=1 -runs="$RUNS" -timeout=20 -rss_limit_mb=2048 -max_len=65536 \
    -artifact_prefix="$WORK/$target-" "$corpus" >"$WORK/$target.log" 2>&1; then
    status=1
    keep=1
    echo "fuzz: $target FAILED (log and input under $WORK):" >&2
    grep -E "ERROR|runtime error|SUMMARY|Test unit written" "$WORK/$target.log" | head -5 >&2
  fi
  seconds=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { print b - a }')
  runs=$(grep -o "Done [0-9]* runs" "$WORK/$target.log" | grep -o "[0-9]*" || echo 0)
  printf "%-14s %9s %8.1f %10.0f %5s→%s\n" "$target" "$runs" "$seconds" "$(awk -v r="${runs:-0}" -v s="$seconds" 'BEGIN { print r / s }')" \
    "$before" "$(ls "$corpus" | wc -l)"
done
exit $status
