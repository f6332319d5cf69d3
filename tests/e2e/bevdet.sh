#!/usr/bin/env bash
# bevdet through the command line, with a tiny model: train on 2 ranks with SyncBN and lpt → checkpoint
# → resume bit-identical → eval (1 and 2 ranks agree; --iou) → infer (LiDAR-frame text, KITTI label_2
# with --calib on a real KITTI frame, --bench) → profile; bad input.
LT=$1
DATA=$2
source "$(dirname "$0")/lib.sh"
CFG="$(dirname "$0")/../../configs/bevdet_small.ini"
COMPARE="/usr/bin/python3 $(dirname "$0")/../../scripts/compare_checkpoints.py"
TINY=(--model.point_range 0,-10.24,-3,20.48,10.24,1 --model.pfn_channels 8 --model.backbone_layers 1,1,1
      --model.backbone_channels 8,8,8 --model.upsample_channels 4 --model.head_channels 8)
RUN=(train --config "$CFG" "${TINY[@]}" --data "$WORK/train" --train.steps 6 --train.batch_size 1
     --train.sync_bn true --train.balance lpt --checkpoint.every 3 --checkpoint.keep 3 --log.every 3)
"$LT" synth --frames 8 --seed 1 --out "$WORK/train" >/dev/null
"$LT" synth --frames 2 --seed 2 --out "$WORK/val" >/dev/null

"$MPIEXEC" -np 2 "$LT" "${RUN[@]}" --data.val "$WORK/val" --run-dir "$WORK/run" >"$WORK/train.log"
grep -q "^train: bevdet, .* on 2 rank(s) (balance lpt, SyncBN)" "$WORK/train.log" && pass "bevdet trains on 2 ranks, SyncBN" ||
  fail "train: $(cat "$WORK/train.log")"
grep -q "^step 6/6" "$WORK/train.log" && pass "progress lines" || fail "progress: $(cat "$WORK/train.log")"
grep -q "^mAP BEV (R40)" "$WORK/train.log" && pass "validation AP table at the end" || fail "no AP table"
grep -q '"map_bev"' "$WORK/run/metrics.jsonl" && pass "metrics.jsonl eval line with map_bev" || fail "no eval line"
CKPT="$WORK/run/checkpoints/ckpt-00000006.h5"
h5dump -H "$CKPT" >"$WORK/ckpt.txt" && grep -q '"head.heatmap.1.bias"' "$WORK/ckpt.txt" && pass "checkpoint holds head.heatmap.1.bias" || fail "checkpoint names"

"$LT" inspect "$CKPT" --config "$CFG" >"$WORK/inspect.log"
grep -q "^model bevdet" "$WORK/inspect.log" && grep -q "model.backbone_layers: 1,1,1 → 1,2,2" "$WORK/inspect.log" &&
  pass "inspect CKPT --config: model and the keys that differ" || fail "inspect: $(cat "$WORK/inspect.log")"

# Resume from step 3 in another run directory: the same parameters, buffers and optimizer state, bit for bit.
mkdir -p "$WORK/resumed/checkpoints"
cp "$WORK/run/checkpoints/ckpt-00000003.h5" "$WORK/resumed/checkpoints/"
echo "ckpt-00000003.h5" >"$WORK/resumed/checkpoints/LATEST"
"$MPIEXEC" -np 2 "$LT" "${RUN[@]}" --run-dir "$WORK/resumed" --resume auto >"$WORK/resume.log"
grep -q "resumed from .*ckpt-00000003.h5 at step 3" "$WORK/resume.log" && pass "resumed at step 3" || fail "resume: $(cat "$WORK/resume.log")"
$COMPARE "$CKPT" "$WORK/resumed/checkpoints/ckpt-00000006.h5" --rtol 0 >"$WORK/compare.log" &&
  pass "resumed run bit-identical to the uninterrupted one" || fail "resume differs: $(tail -3 "$WORK/compare.log")"

# The loss is divided by the global batch's object count: 2 ranks with SyncBN compute what 1 rank does
# with their frames in one batch.
EQ=(train --config "$CFG" "${TINY[@]}" --data "$WORK/train" --train.steps 4 --train.sync_bn true --log.every 4)
"$MPIEXEC" -np 2 "$LT" "${EQ[@]}" --train.batch_size 1 --run-dir "$WORK/eq2" >/dev/null
"$LT" "${EQ[@]}" --train.batch_size 2 --run-dir "$WORK/eq1" >/dev/null
out=$($COMPARE "$WORK/eq2/checkpoints/ckpt-00000004.h5" "$WORK/eq1/checkpoints/ckpt-00000004.h5" --rtol 1e-5 \
  --groups model buffers) && pass "2 ranks with SyncBN = 1 rank with their batch: $out" || fail "equivalence: $out"

"$LT" eval --checkpoint "$CKPT" --data "$WORK/val" --json "$WORK/eval.json" >"$WORK/eval.log"
grep -q "^Car " "$WORK/eval.log" && pass "eval table" || fail "eval: $(cat "$WORK/eval.log")"
[ "$(json_get "$WORK/eval.json" "sorted(j['classes'])")" = "['Car', 'Cyclist', 'Pedestrian']" ] && pass "eval --json classes" ||
  fail "eval json: $(cat "$WORK/eval.json")"
"$MPIEXEC" -np 2 "$LT" eval --checkpoint "$CKPT" --data "$WORK/val" --json "$WORK/eval2.json" >/dev/null
Q="[(c['objects'], c['detections'], c.get('ap_bev'), c.get('ap_distance')) for c in j['classes'].values()]"
[ "$(json_get "$WORK/eval.json" "$Q")" = "$(json_get "$WORK/eval2.json" "$Q")" ] &&
  pass "eval on 2 ranks gathers the same matches and APs" || fail "eval np2 differs"
"$LT" eval --checkpoint "$CKPT" --data "$WORK/val" --iou 0.5 --json "$WORK/eval5.json" >/dev/null
[ "$(json_get "$WORK/eval5.json" "j['classes']['Car']['iou']")" = "0.5" ] && pass "eval --iou 0.5" || fail "eval --iou"

BIN="$DATA/kitti/training/velodyne/000001.bin"
CALIB="$DATA/kitti/training/calib/000001.txt"
"$LT" infer --checkpoint "$CKPT" --input "$BIN" --out "$WORK/boxes.txt" >/dev/null
head -1 "$WORK/boxes.txt" | grep -q "^# class x y z dx dy dz heading score" && pass "infer: LiDAR-frame boxes with a header" ||
  fail "infer text: $(head -3 "$WORK/boxes.txt")"
awk 'NR > 1 && NF != 9 { bad = 1 } END { exit bad }' "$WORK/boxes.txt" && pass "infer: 9 fields per box" || fail "infer fields"
"$LT" infer --checkpoint "$CKPT" --input "$BIN" --calib "$CALIB" >"$WORK/label_2.txt"
awk '!($1 ~ /^(Car|Pedestrian|Cyclist)$/) || NF != 16 { bad = 1 } END { exit bad }' "$WORK/label_2.txt" &&
  pass "infer --calib: KITTI label_2 lines with a score ($(wc -l <"$WORK/label_2.txt") boxes)" ||
  fail "label_2: $(head -3 "$WORK/label_2.txt")"
"$LT" infer --checkpoint "$CKPT" --input "$BIN" --bench 3 --json "$WORK/bench.json" >"$WORK/bench.log"
grep -q "latency p50" "$WORK/bench.log" && [ "$(json_get "$WORK/bench.json" "j['model']")" = "bevdet" ] &&
  pass "infer --bench: $(cat "$WORK/bench.log")" || fail "bench: $(cat "$WORK/bench.log")"

"$LT" profile --config "$CFG" "${TINY[@]}" --points 20000 --repeat 1 --json "$WORK/profile.json" >"$WORK/profile.log"
grep -q "^backbone.blocks.0" "$WORK/profile.log" && grep -q "inference p50" "$WORK/profile.log" && pass "profile table" ||
  fail "profile: $(cat "$WORK/profile.log")"
[ "$(json_get "$WORK/profile.json" "j['model'] == 'bevdet' and j['prepare_ms'] > 0 and j['infer_p50_ms'] > 0")" = "True" ] &&
  pass "profile json" || fail "profile json"

# Bad input.
"$LT" convert --format semantickitti --in "$DATA/semantickitti" --out "$WORK/sk" >/dev/null
expect_error "bevdet on a dataset without boxes" "sk: dataset has no boxes to train bevdet on" \
  "$LT" train --config "$CFG" "${TINY[@]}" --data "$WORK/sk" --run-dir "$WORK/bad"
expect_error "point range with 5 values" "model.point_range" \
  "$LT" train --config "$CFG" --model.point_range 0,0,0,10,10 --data "$WORK/train" --run-dir "$WORK/bad"
expect_error "pillar grid not a multiple of 8" "whole multiples of 8 pillars" \
  "$LT" train --config "$CFG" --model.pillar_size 0.3 --data "$WORK/train" --run-dir "$WORK/bad"
expect_error "class weights for bevdet" "train.class_weights: semseg only" \
  "$LT" train --config "$CFG" --train.class_weights 1,2 --data "$WORK/train" --run-dir "$WORK/bad"
expect_error "eval --iou out of range" "--iou: thresholds must be in" \
  "$LT" eval --checkpoint "$CKPT" --data "$WORK/val" --iou 1.5
expect_error "infer --calib missing" "nope.txt" "$LT" infer --checkpoint "$CKPT" --input "$BIN" --calib "$WORK/nope.txt"
[ -e "$WORK/bad" ] && fail "a run directory was made for bad input" || pass "nothing written for bad input"
finish
