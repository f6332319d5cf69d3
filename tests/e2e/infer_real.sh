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
/usr/bin/python3 - "$DATA/kitti/training" "$WORK/kp" <<'PY' && pass "KITTI: label_2/<frame>.txt per frame, 16 fields a line (type, truncated, occluded, alpha = ry - atan2(x, z), the 2D box of the projected corners through P2 clipped to the image, h w l, x y z, ry, score): every LiDAR-frame box in the camera's view, none outside" || fail "KITTI label_2 layout"
import glob, math, os, sys
import numpy as np
src, out = sys.argv[1:3]
frames = sorted(os.path.basename(p)[:-4] for p in glob.glob(os.path.join(src, 'velodyne', '*.bin')))
assert len(frames) == 3, frames
assert sorted(os.listdir(os.path.join(out, 'label_2'))) == [f + '.txt' for f in frames], os.listdir(os.path.join(out, 'label_2'))
lines = in_view = 0
W, H = 1242, 375
for f in frames:
    rows = [l.split() for l in open(os.path.join(out, 'label_2', f + '.txt'))]
    boxes = [l.split() for l in open(os.path.join(out, 'boxes', f + '.txt')) if not l.startswith('#')]
    calib = {}
    for line in open(os.path.join(src, 'calib', f + '.txt')):
        if ':' in line:
            key, values = line.split(':', 1)
            calib[key] = np.array([float(v) for v in values.split()])
    r0, tr, p2 = calib['R0_rect'].reshape(3, 3), calib['Tr_velo_to_cam'].reshape(3, 4), calib['P2'].reshape(3, 4)
    expected = []  # the boxes surely in view: every corner in front of the camera, the centre inside the image
    for box in boxes:
        bx, by, bz, dx, dy, dz, heading, bscore = map(float, box[1:9])
        c, s = math.cos(heading), math.sin(heading)
        corners = [np.array([bx + c * u - s * v, by + s * u + c * v, bz + w, 1.0])
                   for u in (-dx / 2, dx / 2) for v in (-dy / 2, dy / 2) for w in (-dz / 2, dz / 2)]
        pix = [p2 @ np.append(r0 @ (tr @ k), 1.0) for k in corners]
        centre = p2 @ np.append(r0 @ (tr @ np.array([bx, by, bz, 1.0])), 1.0)
        if min(p[2] for p in pix) > 0.5 and 0 <= centre[0] / centre[2] <= W - 1 and 0 <= centre[1] / centre[2] <= H - 1:
            us, vs = [p[0] / p[2] for p in pix], [p[1] / p[2] for p in pix]
            clip = lambda x, hi: min(max(x, 0.0), hi)
            expected.append((box, [clip(min(us), W - 1), clip(min(vs), H - 1), clip(max(us), W - 1), clip(max(vs), H - 1)]))
    assert len(rows) <= len(boxes) and len(rows) >= len(expected), (f, len(rows), len(boxes), len(expected))
    for row in rows:
        assert len(row) == 16 and row[0] in ('Car', 'Pedestrian', 'Cyclist'), row
        h, w, l, x, y, z, ry, score = map(float, row[8:16])
        alpha, left, top, right, bottom = map(float, row[3:8])
        assert -math.pi - 0.01 <= alpha <= math.pi + 0.01, row
        d = (alpha - (ry - math.atan2(x, z)) + math.pi) % (2 * math.pi) - math.pi
        assert abs(d) < 0.011, (row, d)
        assert 0 <= left < right <= W - 1 and 0 <= top < bottom <= H - 1, row
        # the box it came from: same class and score, the bottom centre through Tr_velo_to_cam and R0_rect
        match = [b for b in boxes if b[0] == row[0] and abs(float(b[8]) - score) < 1e-4 and
                 np.allclose(r0 @ (tr @ np.array([float(b[1]), float(b[2]), float(b[3]) - float(b[6]) / 2, 1.0])), [x, y, z], atol=0.02)]
        assert match, row
        lines += 1
    for box, bbox in expected:
        # the LiDAR box's own corners land within a few pixels (the camera-frame box is upright in the
        # rectified frame, tilted from the LiDAR's z by a fraction of a degree: 4 px at 3 m)
        hits = [r for r in rows if r[0] == box[0] and abs(float(r[15]) - float(box[8])) < 1e-4 and
                np.allclose([float(v) for v in r[4:8]], bbox, atol=6.0)]
        assert len(hits) == 1, (f, box, bbox, hits)
        # and the devkit's own corners of the written camera-frame box (compute_box_3d) give the 2D box
        h, w, l, x, y, z, ry = map(float, hits[0][8:15])
        rot = np.array([[math.cos(ry), 0, math.sin(ry)], [0, 1, 0], [-math.sin(ry), 0, math.cos(ry)]])
        corners = rot @ np.array([[l / 2, l / 2, -l / 2, -l / 2, l / 2, l / 2, -l / 2, -l / 2],
                                  [0, 0, 0, 0, -h, -h, -h, -h],
                                  [w / 2, -w / 2, -w / 2, w / 2, w / 2, -w / 2, -w / 2, w / 2]]) + np.array([[x], [y], [z]])
        pix = p2 @ np.vstack([corners, np.ones(8)])
        us, vs = pix[0] / pix[2], pix[1] / pix[2]
        devkit = [max(us.min(), 0), max(vs.min(), 0), min(us.max(), W - 1), min(vs.max(), H - 1)]
        assert np.allclose([float(v) for v in hits[0][4:8]], devkit, atol=1 + 6 / z), (hits[0], devkit)  # fields of 2 decimals (5 mm: 0.35 px at 10 m)
        in_view += 1
assert lines > 0 and in_view > 0, (lines, in_view)
print(f"{lines} label_2 lines, {in_view} boxes checked against an independent projection", file=sys.stderr)
PY
"$LT" eval --checkpoint "$B" --data "$WORK/kitti" --iou 0.01 --json "$WORK/kc.json" >/dev/null
"$LT" eval --predictions "$WORK/kp" --data "$WORK/kitti" --iou 0.01 --json "$WORK/ke.json" >/dev/null
[ "$(json_get "$WORK/kc.json" "j['classes']")" = "$(json_get "$WORK/ke.json" "j['classes']")" ] &&
  pass "KITTI: eval --predictions = eval --checkpoint" || fail "KITTI eval differs"
"$LT" infer --checkpoint "$B" --data "$WORK/kitti" --out "$WORK/kl" --boxes lidar >/dev/null
[ ! -e "$WORK/kl/label_2" ] && [ "$(ls "$WORK/kl/boxes" | wc -l)" -eq 3 ] && pass "--boxes lidar: LiDAR-frame boxes only" ||
  fail "--boxes lidar wrote label_2"

# KITTI's protocol on the converted frames: eval --checkpoint and eval --predictions give the same table.
[ "$(json_get "$WORK/kc.json" "j['kitti']")" = "$(json_get "$WORK/ke.json" "j['kitti']")" ] &&
  [ "$(json_get "$WORK/kc.json" "j['kitti']['frames']")" = 3 ] &&
  pass "KITTI protocol: eval --predictions = eval --checkpoint ($(json_get "$WORK/kc.json" "j['kitti']['classes']['Car']['objects']") Car objects by difficulty)" ||
  fail "KITTI protocol differs or missing"
# The annotation itself as results (score 1), from a directory of label_2 files as other tools write them.
mkdir -p "$WORK/gt/label_2"
for f in "$DATA"/kitti/training/label_2/*.txt; do awk '{print $0" 1.0"}' "$f" >"$WORK/gt/label_2/$(basename "$f")"; done
"$LT" eval --predictions "$WORK/gt" --data "$WORK/kitti" --json "$WORK/gt.json" >"$WORK/gt.txt" &&
  grep -q "^Car AP_R40@0.70, 0.70, 0.70:" "$WORK/gt.txt" &&
  /usr/bin/python3 -c "
import json, sys
k = json.load(open(sys.argv[1]))['kitti']['classes']['Pedestrian']
# 000000's pedestrian (occluded 0, 165 px tall): 1 object in every difficulty; 1 threshold: R11 = 100/11, R40 = 0
assert k['objects'] == {'easy': 1, 'moderate': 1, 'hard': 1}, k['objects']
assert abs(k['strict']['r11']['3d']['moderate'] - 100 / 11) < 1e-9 and k['strict']['r40']['3d']['moderate'] == 0, k['strict']
" "$WORK/gt.json" && pass "label_2 results of another tool: KITTI's table, the devkit's numbers for one object" ||
  fail "eval of label_2 results: $(head -5 "$WORK/gt.txt")"
# Bad input: calibrations without P2 (label_2 results refused with one line; auto writes LiDAR boxes only),
# a calib file without P2 for one frame, an image size that is not positive, a results file missing.
cp -r "$DATA/kitti" "$WORK/k_nop2" && chmod -R u+w "$WORK/k_nop2"
for f in "$WORK"/k_nop2/training/calib/*.txt; do grep -v '^P2:' "$f" >"$f.new" && mv "$f.new" "$f"; done
"$LT" convert --format kitti --in "$WORK/k_nop2" --out "$WORK/nop2" >/dev/null
expect_error "label_2 results without P2" "nop2: its calibrations have no P2 .*--boxes label_2 needs" \
  "$LT" infer --checkpoint "$B" --data "$WORK/nop2" --out "$WORK/np" --boxes label_2
"$LT" infer --checkpoint "$B" --data "$WORK/nop2" --out "$WORK/np" 2>"$WORK/np.err" >/dev/null &&
  [ ! -e "$WORK/np/label_2" ] && grep -q "no P2: no label_2 results" "$WORK/np.err" &&
  pass "--boxes auto without P2: LiDAR boxes and a warning" || fail "auto without P2: $(cat "$WORK/np.err")"
expect_error "infer --calib without P2" "k_nop2/training/calib/000001.txt: no P2" \
  "$LT" infer --checkpoint "$B" --input "$DATA/kitti/training/velodyne/000001.bin" --calib "$WORK/k_nop2/training/calib/000001.txt"
expect_error "a non-positive image size" "--image-size: '0x375' is not WIDTHxHEIGHT" \
  "$LT" infer --checkpoint "$B" --input "$DATA/kitti/training/velodyne/000001.bin" \
  --calib "$DATA/kitti/training/calib/000001.txt" --image-size 0x375
cp "$DATA/kitti/training/calib/000001.txt" "$WORK/k_nop2/training/calib/000001.txt"
expect_error "P2 in some calibrations only" "calib/000001.txt: has P2 and the first frame's calibration has not" \
  "$LT" convert --format kitti --in "$WORK/k_nop2" --out "$WORK/nop2b"
rm "$WORK/gt/label_2/000001.txt"
expect_error "a results file missing" "gt/label_2/000001.txt: missing \\(the results of frame 000001" \
  "$LT" eval --predictions "$WORK/gt" --data "$WORK/kitti"

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
