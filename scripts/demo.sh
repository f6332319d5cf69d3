#!/usr/bin/env bash
# The demo: set up, generate a synthetic LiDAR dataset on 2 ranks, convert the real sample frames,
# and inspect everything. Training and evaluation join the demo as they are built (issue 3 on).
#   DEMO_DIR (default ./demo)   DEMO_FRAMES (default 128)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
LT=build/lidartrain
DEMO=${DEMO_DIR:-demo}
FRAMES=${DEMO_FRAMES:-128}
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
echo "demo: datasets in $DEMO/. Training and evaluation are not built yet (issue 3)."
