#!/usr/bin/env bash
# train → checkpoint → eval → infer → profile through the command line, with a tiny model.
LT=$1
DATA=$2
source "$(dirname "$0")/lib.sh"

TINY=(--model.voxel_size 1.6 --model.point_channels 8,16 --model.bev_channels 8,16,16 --model.head_channels 8)
"$LT" synth --frames 6 --seed 1 --out "$WORK/train" >/dev/null
"$LT" synth --frames 2 --seed 2 --out "$WORK/val" >/dev/null
"$LT" train --config "$(dirname "$0")/../../configs/semseg_small.ini" "${TINY[@]}" --data "$WORK/train" \
  --data.val "$WORK/val" --train.steps 6 --train.batch_size 1 --log.every 3 --checkpoint.every 4 --checkpoint.keep 1 \
  --run-dir "$WORK/run" >"$WORK/train.log"
grep -q "^step 6/6" "$WORK/train.log" && pass "progress lines" || fail "progress: $(cat "$WORK/train.log")"
grep -q "^mIoU" "$WORK/train.log" && pass "validation table at the end" || fail "no validation table"
[ "$(grep -c '"step"' "$WORK/run/metrics.jsonl")" -eq 7 ] && pass "metrics.jsonl: 6 steps + 1 evaluation" ||
  fail "metrics.jsonl: $(wc -l <"$WORK/run/metrics.jsonl") lines"
[ "$(cat "$WORK/run/checkpoints/LATEST")" = "ckpt-00000006.h5" ] && pass "LATEST" || fail "LATEST"
[ "$(ls "$WORK/run/checkpoints"/*.h5 | wc -l)" -eq 1 ] && pass "checkpoint.keep 1" || fail "kept: $(ls "$WORK/run/checkpoints")"
grep -q "point_channels = 8,16" "$WORK/run/config.ini" && pass "resolved config.ini" || fail "config.ini"
CKPT="$WORK/run/checkpoints/ckpt-00000006.h5"
h5dump -H "$CKPT" >"$WORK/ckpt.txt" && grep -q '"point_mlp.0.0.weight"' "$WORK/ckpt.txt" && pass "checkpoint readable by h5dump, PyTorch names" ||
  fail "h5dump of the checkpoint"

"$LT" eval --checkpoint "$CKPT" --data "$WORK/val" --json "$WORK/eval.json" >"$WORK/eval.log"
grep -q "^road" "$WORK/eval.log" && pass "eval IoU table" || fail "eval table"
[ "$(json_get "$WORK/eval.json" "len(j['confusion'])")" -eq 20 ] && pass "eval --json confusion 20x20" || fail "eval json"
"$MPIEXEC" -np 2 "$LT" eval --checkpoint "$CKPT" --data "$WORK/val" --json "$WORK/eval2.json" >/dev/null
[ "$(json_get "$WORK/eval.json" "j['confusion']")" = "$(json_get "$WORK/eval2.json" "j['confusion']")" ] &&
  pass "eval on 2 ranks reduces the same confusion matrix" || fail "eval np2 differs"

BIN="$DATA/semantickitti/velodyne/000000.bin"
"$LT" infer --checkpoint "$CKPT" --input "$BIN" --out "$WORK/pred.label" --bench 2 --json "$WORK/bench.json" >/dev/null
[ "$(stat -c %s "$WORK/pred.label")" -eq "$(stat -c %s "$DATA/semantickitti/labels/000000.label")" ] &&
  pass ".label has one uint32 per point" || fail ".label size"
python3 - "$WORK/pred.label" <<'PY' && pass ".label holds raw SemanticKITTI ids" || fail ".label ids"
import struct, sys
raw = open(sys.argv[1], 'rb').read()
ids = set(struct.unpack('<%dI' % (len(raw) // 4), raw))
sys.exit(0 if ids <= {10, 11, 15, 18, 20, 30, 31, 32, 40, 44, 48, 49, 50, 51, 70, 71, 72, 80, 81} else 1)
PY
[ "$(json_get "$WORK/bench.json" "j['runs']")" -eq 2 ] && pass "infer --bench --json" || fail "bench json"

"$LT" profile --config "$(dirname "$0")/../../configs/semseg_small.ini" "${TINY[@]}" --points 20000 --repeat 1 \
  --json "$WORK/profile.json" >"$WORK/profile.log"
grep -q "^bev.enc1" "$WORK/profile.log" && pass "profile table" || fail "profile: $(cat "$WORK/profile.log")"
[ "$(json_get "$WORK/profile.json" "j['params'] > 0 and j['macs'] > 0")" = "True" ] && pass "profile json" || fail "profile json"

"$LT" profile --config "$(dirname "$0")/../../configs/semseg_small.ini" "${TINY[@]}" --input "$BIN" --repeat 1 \
  >"$WORK/profile_real.log"
grep -q "^profile: semseg on cpu, $(($(stat -c %s "$BIN") / 16)) points" "$WORK/profile_real.log" &&
  pass "profile --input: the real scan's points" || fail "profile --input: $(cat "$WORK/profile_real.log")"
expect_error "profile with --points and --input" "--points and --input: give one of them" \
  "$LT" profile "${TINY[@]}" --input "$BIN" --points 100

head -c 100 "$BIN" >"$WORK/short.bin"
expect_error "infer on a truncated .bin" "short.bin: 100 bytes is not a whole number" \
  "$LT" infer --checkpoint "$CKPT" --input "$WORK/short.bin" --out "$WORK/x.label"
[ -e "$WORK/x.label" ] && fail "a .label was written for bad input" || pass "no .label written"
expect_error "eval of a missing checkpoint" "nope.h5: no such checkpoint" "$LT" eval --checkpoint "$WORK/nope.h5" --data "$WORK/val"
"$LT" train "${TINY[@]}" --train.steps 6 --data "$WORK/train" --run-dir "$WORK/run" | grep -q "is complete" &&
  pass "training again into a finished run dir resumes to nothing" || fail "a finished run dir was trained again"
expect_error "bad channel list" "model.bev_channels" "$LT" train --model.bev_channels 8,x,3 --data "$WORK/train"
finish
