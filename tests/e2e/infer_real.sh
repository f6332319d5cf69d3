#!/usr/bin/env bash
# infer --data on the real frames of ../shared/data/lidar through convert (issue 14): KITTI frames with
# their calibrations give KITTI label_2 result files (the devkit's format) besides the LiDAR-frame boxes,
# the SemanticKITTI scan gives a .label of 4 bytes a point where the SemanticKITTI API looks for it, and
# eval --predictions scores them as eval --checkpoint does.
LT=$1
DATA=$2
source "$(dirname "$0")/lib.sh"
[ -d "$DATA/kitti" ] || { echo "real sample data not found at $DATA" >&2; exit 1; }

CFG="$(dirname "$0")/../../configs"
"$LT" synth --frames 4 --seed 1 --out "$WORK/train" >/dev/null
"$LT" train --config "$CFG/semseg_small.ini" --model.voxel_size 3.2 --model.point_channels 8,8 --model.bev_channels 8,8,8 \
  --model.head_channels 8 --train.batch_size 1 --data "$WORK/train" --train.steps 1 --run-dir "$WORK/s" >/dev/null
"$LT" train --config "$CFG/bevdet_small.ini" --model.pillar_size 1.28 --model.pfn_channels 8 --model.backbone_layers 1,1,1 \
  --model.backbone_channels 8,8,8 --model.upsample_channels 8 --model.head_channels 8 --train.batch_size 1 \
  --data "$WORK/train" --train.steps 1 --run-dir "$WORK/b" >/dev/null
S="$WORK/s/checkpoints/ckpt-00000001.h5"
B="$WORK/b/checkpoints/ckpt-00000001.h5"

# KITTI: convert stores each frame's calibration; infer --data writes label_2/ and boxes/ per frame.
"$LT" convert --format kitti --in "$DATA/kitti" --out "$WORK/kitti" >/dev/null
"$LT" inspect "$WORK/kitti" --json "$WORK/kitti.json" | grep -q "KITTI calibrations per frame" &&
  [ "$(json_get "$WORK/kitti.json" "j['has_calib']")" = True ] && pass "convert --format kitti stores the calibrations" ||
  fail "no calibrations in the converted KITTI dataset"
"$MPIEXEC" -np 2 --oversubscribe "$LT" infer --checkpoint "$B" --data "$WORK/kitti" --out "$WORK/kp" >"$WORK/kp.log" 2>&1 ||
  fail "kitti infer: $(cat "$WORK/kp.log")"
/usr/bin/python3 - "$DATA/kitti/training" "$WORK/kp" <<'PY' && pass "KITTI: label_2/<frame>.txt per frame, 16 fields a line (type, truncated 0, occluded 0, alpha -10, no 2D box, h w l, x y z, ry, score), one line per LiDAR-frame box" || fail "KITTI label_2 layout"
import glob, os, sys
import numpy as np
src, out = sys.argv[1:3]
frames = sorted(os.path.basename(p)[:-4] for p in glob.glob(os.path.join(src, 'velodyne', '*.bin')))
assert len(frames) == 3, frames
assert sorted(os.listdir(os.path.join(out, 'label_2'))) == [f + '.txt' for f in frames], os.listdir(os.path.join(out, 'label_2'))
lines = 0
for f in frames:
    rows = [l.split() for l in open(os.path.join(out, 'label_2', f + '.txt'))]
    boxes = [l.split() for l in open(os.path.join(out, 'boxes', f + '.txt')) if not l.startswith('#')]
    assert len(rows) == len(boxes), (f, len(rows), len(boxes))
    # the calibration: camera-frame height = LiDAR dz, the location through Tr_velo_to_cam and R0_rect
    calib = {}
    for line in open(os.path.join(src, 'calib', f + '.txt')):
        if ':' in line:
            key, values = line.split(':', 1)
            calib[key] = np.array([float(v) for v in values.split()])
    r0 = calib['R0_rect'].reshape(3, 3)
    tr = calib['Tr_velo_to_cam'].reshape(3, 4)
    for row, box in zip(rows, boxes):
        assert len(row) == 16 and row[0] == box[0] and row[0] in ('Car', 'Pedestrian', 'Cyclist'), row
        assert row[1:8] == ['0.00', '0', '-10.00', '0.00', '0.00', '0.00', '0.00'], row
        h, w, l, x, y, z, ry, score = map(float, row[8:16])
        bx, by, bz, dx, dy, dz, heading, bscore = map(float, box[1:9])
        assert abs(h - dz) < 0.006 and abs(w - dy) < 0.006 and abs(l - dx) < 0.006, (row, box)
        bottom = r0 @ (tr @ np.array([bx, by, bz - dz / 2, 1.0]))
        assert np.allclose(bottom, [x, y, z], atol=0.02), (bottom, row)
        assert abs(score - bscore) < 1e-4, (row, box)
        lines += 1
assert lines > 0
PY
"$LT" eval --checkpoint "$B" --data "$WORK/kitti" --iou 0.01 --json "$WORK/kc.json" >/dev/null
"$LT" eval --predictions "$WORK/kp" --data "$WORK/kitti" --iou 0.01 --json "$WORK/ke.json" >/dev/null
[ "$(json_get "$WORK/kc.json" "j['classes']")" = "$(json_get "$WORK/ke.json" "j['classes']")" ] &&
  pass "KITTI: eval --predictions = eval --checkpoint" || fail "KITTI eval differs"
"$LT" infer --checkpoint "$B" --data "$WORK/kitti" --out "$WORK/kl" --boxes lidar >/dev/null
[ ! -e "$WORK/kl/label_2" ] && [ "$(ls "$WORK/kl/boxes" | wc -l)" -eq 3 ] && pass "--boxes lidar: LiDAR-frame boxes only" ||
  fail "--boxes lidar wrote label_2"

# SemanticKITTI: the real scan (velodyne/ and labels/ directly: sequence 00).
"$LT" convert --format semantickitti --in "$DATA/semantickitti" --out "$WORK/sk" >/dev/null
"$LT" infer --checkpoint "$S" --data "$WORK/sk" --out "$WORK/sp" >"$WORK/sp.log" || fail "semantickitti infer: $(cat "$WORK/sp.log")"
/usr/bin/python3 - "$DATA/semantickitti" "$WORK/sp" <<'PY' && pass "SemanticKITTI: sequences/00/predictions/<scan>.label, 4 bytes a point, raw ids of the learning map" || fail "SemanticKITTI .label layout"
import glob, os, sys
import numpy as np
src, out = sys.argv[1:3]
scans = sorted(glob.glob(os.path.join(src, 'velodyne', '*.bin')))
assert len(scans) == 1
name = os.path.basename(scans[0])[:-4]
points = os.path.getsize(scans[0]) // 16
labels = np.fromfile(os.path.join(out, 'sequences', '00', 'predictions', name + '.label'), dtype='<u4')
assert labels.size == points, (labels.size, points)
assert set(np.unique(labels & 0xFFFF)) <= {10, 11, 15, 18, 20, 30, 31, 32, 40, 44, 48, 49, 50, 51, 70, 71, 72, 80, 81}
assert np.all(labels >> 16 == 0)  # no instance ids
PY
"$LT" eval --checkpoint "$S" --data "$WORK/sk" --json "$WORK/sc.json" >/dev/null
"$LT" eval --predictions "$WORK/sp" --data "$WORK/sk" --json "$WORK/se.json" >/dev/null
[ "$(json_get "$WORK/sc.json" "j['confusion']")" = "$(json_get "$WORK/se.json" "j['confusion']")" ] &&
  pass "SemanticKITTI: eval --predictions = eval --checkpoint (the confusion matrix)" || fail "SemanticKITTI eval differs"
finish
