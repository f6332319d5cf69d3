#!/usr/bin/env bash
# KITTI's protocol on synthetic frames (issue 32): synth gives each frame the KITTI rig's camera and the
# label_2 annotation of the boxes it sees; export writes a KITTI directory; the annotation written as
# results scores what the devkit's rules give for a perfect detector (100 where a class has 41 objects or
# more, the recall sampling's cap below), and 0 with its 2D boxes zeroed (the minimum height); the KITTI
# directory converts back to the same annotation; two ranks give the same numbers.
LT=$1
source "$(dirname "$0")/lib.sh"

"$LT" synth --frames 64 --seed 3 --out "$WORK/s" >/dev/null
"$LT" export --format kitti --data "$WORK/s" --out "$WORK/k" >/dev/null || fail "export"
/usr/bin/python3 - "$WORK/k" <<'PY' && pass "export: a KITTI directory (training/velodyne, calib with P2, label_2 of 15 fields with 2D boxes, ImageSets/val.txt)" || fail "export layout"
import os, sys
root = sys.argv[1]
names = [l.strip() for l in open(os.path.join(root, 'ImageSets', 'val.txt'))]
assert names == ['%06d' % i for i in range(64)], names[:3]
objects = 0
for n in names:
    assert os.path.getsize(os.path.join(root, 'training', 'velodyne', n + '.bin')) % 16 == 0
    keys = [l.split(':')[0] for l in open(os.path.join(root, 'training', 'calib', n + '.txt'))]
    assert keys == ['P0', 'P1', 'P2', 'P3', 'R0_rect', 'Tr_velo_to_cam', 'Tr_imu_to_velo'], keys
    for l in open(os.path.join(root, 'training', 'label_2', n + '.txt')):
        f = l.split()
        assert len(f) == 15 and f[0] in ('Car', 'Pedestrian', 'Cyclist'), f
        left, top, right, bottom = map(float, f[4:8])
        assert 0 <= left < right <= 1241 and 0 <= top < bottom <= 374, f
        assert 0 <= float(f[1]) <= 1 and f[2] in ('0', '1', '2'), f
        objects += 1
assert objects > 200, objects
PY

# The annotation as results (score 1), and again with the 2D boxes zeroed.
mkdir -p "$WORK/gt/label_2" "$WORK/zero/label_2"
for f in "$WORK"/k/training/label_2/*.txt; do
  awk '{print $0" 1.0"}' "$f" >"$WORK/gt/label_2/$(basename "$f")"
  awk '{$5 = $6 = $7 = $8 = "0.00"; print $0" 1.0"}' "$f" >"$WORK/zero/label_2/$(basename "$f")"
done
"$LT" eval --predictions "$WORK/gt" --data "$WORK/s" --json "$WORK/gt.json" >"$WORK/gt.txt" || fail "eval gt"
"$LT" eval --predictions "$WORK/zero" --data "$WORK/s" --json "$WORK/zero.json" >/dev/null || fail "eval zero"
/usr/bin/python3 - "$WORK/gt.json" "$WORK/zero.json" <<'PY' && pass "the annotation as results: AP 100 where a class has 41 objects or more, (n-1)/40 (R40) and ceil(n/4)/11 (R11) below; 0 with zeroed 2D boxes" || fail "GT as results"
import json, math, sys
gt = json.load(open(sys.argv[1]))['kitti']
zero = json.load(open(sys.argv[2]))['kitti']
full = 0
for cls, k in gt['classes'].items():
    for d, n in k['objects'].items():
        for s in ('strict', 'loose'):
            for metric in ('bbox', 'bev', '3d', 'aos'):
                r40, r11 = k[s]['r40'][metric][d], k[s]['r11'][metric][d]
                want40 = 100 * min(max(n - 1, 0), 40) / 40
                want11 = 100 * min(math.ceil(n / 4), 11) / 11
                tol = 1e-3 if metric == 'aos' else 1e-9  # alpha written with two decimals
                assert abs(r40 - want40) <= tol and abs(r11 - want11) <= tol, (cls, d, s, metric, n, r40, r11)
                assert zero['classes'][cls][s]['r40'][metric][d] == 0, (cls, d, s, metric)
                assert zero['classes'][cls][s]['r11'][metric][d] == 0, (cls, d, s, metric)
                full += n >= 41 and r40 == 100
assert full > 0 and gt['car_3d_moderate_r40'] == 100, (full, gt['car_3d_moderate_r40'])
PY
grep -q "^3D AP (R40) Car Moderate @0.70: 100.0000" "$WORK/gt.txt" && pass "the table's headline" || fail "$(tail -2 "$WORK/gt.txt")"

# The KITTI directory converts back: the same points and annotation (fields of two decimals).
"$LT" convert --format kitti --in "$WORK/k" --out "$WORK/back" >/dev/null || fail "convert of the export"
"$LT" eval --predictions "$WORK/gt" --data "$WORK/back" --json "$WORK/back.json" >/dev/null || fail "eval back"
# (AOS moves by the alpha rounding: the converted annotation has the results' two decimals, so it is 100.)
no_aos="{c: {s: {r: {m: v for m, v in x[s][r].items() if m != 'aos'} for r in ('r11', 'r40')} for s in ('strict', 'loose')} for c, x in j['kitti']['classes'].items()}"
[ "$(json_get "$WORK/gt.json" "$no_aos")" = "$(json_get "$WORK/back.json" "$no_aos")" ] &&
  [ "$(json_get "$WORK/back.json" "j['kitti']['classes']['Car']['strict']['r40']['aos']['moderate'] == 100")" = True ] &&
  pass "export → convert: the same table" || fail "export → convert changed the table"

# Two ranks: the same numbers.
"$MPIEXEC" -np 2 --oversubscribe "$LT" eval --predictions "$WORK/gt" --data "$WORK/s" --json "$WORK/gt2.json" >/dev/null ||
  fail "eval on 2 ranks"
[ "$(json_get "$WORK/gt.json" "j['kitti']")" = "$(json_get "$WORK/gt2.json" "j['kitti']")" ] &&
  pass "2 ranks: the same KITTI table" || fail "2 ranks differ"

# Bad input: a dataset without a camera, an existing output, another format.
"$LT" synth --frames 2 --seed 3 --out "$WORK/lidar_only" --no-camera >/dev/null
expect_error "export without a camera" "lidar_only: no calibrations .*which a KITTI directory needs" \
  "$LT" export --format kitti --data "$WORK/lidar_only" --out "$WORK/k2"
[ ! -e "$WORK/k2" ] && [ ! -e "$WORK/k2.partial" ] && pass "and nothing written" || fail "export left files"
expect_error "export over a directory" "k: exists \(--force replaces it\)" \
  "$LT" export --format kitti --data "$WORK/s" --out "$WORK/k"
expect_error "export format" "--format: 'nuscenes' is not kitti" \
  "$LT" export --format nuscenes --data "$WORK/s" --out "$WORK/k3"
expect_error "eval of label_2 results on a dataset without camera objects" "no camera annotation" \
  "$LT" eval --predictions "$WORK/gt" --data "$WORK/lidar_only"
finish
