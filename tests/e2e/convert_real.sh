#!/usr/bin/env bash
# convert on the real frames of ../shared/data/lidar, checked against SOURCES.md.
LT=$1
DATA=$2
source "$(dirname "$0")/lib.sh"
[ -d "$DATA/kitti" ] || { echo "real sample data not found at $DATA" >&2; exit 1; }

"$LT" convert --format semantickitti --in "$DATA/semantickitti" --out "$WORK/sk" >/dev/null
"$LT" inspect "$WORK/sk" --json "$WORK/sk.json" >/dev/null
got=$(json_get "$WORK/sk.json" "[j['label_points'][c] for c in ('unlabeled','car','person','road','sidewalk','vegetation','terrain','traffic-sign')]")
[ "$got" = "[6924, 1534, 161, 20975, 30092, 24514, 30925, 1112]" ] && pass "semantickitti histogram" ||
  fail "semantickitti histogram: $got"

"$MPIEXEC" -np 2 "$LT" convert --format kitti --in "$DATA/kitti" --out "$WORK/kitti" --shards 3 >/dev/null
"$LT" convert --format kitti --in "$DATA/kitti" --out "$WORK/kitti1" --shards 3 >/dev/null
"$LT" convert --format kitti --in "$DATA/kitti/training" --out "$WORK/kitti_training" >/dev/null  # also accepted
for shard in "$WORK/kitti"/*.h5; do
  h5diff "$shard" "$WORK/kitti1/$(basename "$shard")" >/dev/null || fail "kitti np2 vs np1: $(basename "$shard")"
done
"$LT" inspect "$WORK/kitti" --json "$WORK/kitti.json" >/dev/null
got=$(json_get "$WORK/kitti.json" "[j['frames'], j['points_total'], j['boxes']['Car'], j['boxes']['Pedestrian'], j['boxes']['Cyclist'], j['has_labels']]")
[ "$got" = "[3, 362543, 2, 1, 1, False]" ] && pass "kitti frames, points and boxes" || fail "kitti: $got"

"$LT" convert --format nuscenes --in "$DATA/nuscenes" --out "$WORK/nus" >/dev/null
"$LT" inspect "$WORK/nus" --json "$WORK/nus.json" >/dev/null
got=$(json_get "$WORK/nus.json" "[j['frames'], j['points_total'], j['has_labels'], j['has_boxes'], j['cost']['max'] < 34688 - 8000]")
[ "$got" = "[1, 34688, False, False, True]" ] && pass "nuscenes points (ego returns not counted in cost)" || fail "nuscenes: $got"

"$LT" convert --format semantickitti --in "$DATA/semantickitti_tiny" --label-map "$DATA/config/semantic-kitti.yaml" \
  --out "$WORK/tiny" >/dev/null
"$LT" inspect "$WORK/tiny" --json "$WORK/tiny.json" >/dev/null
got=$(json_get "$WORK/tiny.json" "[j['label_points'][c] for c in ('unlabeled','building','vegetation','trunk','pole')]")
[ "$got" = "[3, 25, 17, 3, 2]" ] && pass "--label-map with the official yaml" || fail "label map: $got"
finish
