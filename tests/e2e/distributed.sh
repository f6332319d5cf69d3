#!/usr/bin/env bash
# Data-parallel training under mpirun: runs on 2 ranks, is bit-identical across reruns, reports the
# straggler imbalance, and survives a rank with no frames in a step (bucket with a partial bucket).
LT=$1
source "$(dirname "$0")/lib.sh"

TINY=(--model.voxel_size 1.6 --model.point_channels 8,16 --model.bev_channels 8,16,16 --model.head_channels 8)
"$LT" synth --frames 12 --seed 1 --out "$WORK/train" >/dev/null
for run in a b; do
  "$MPIEXEC" -np 2 "$LT" train "${TINY[@]}" --data "$WORK/train" --train.steps 5 --train.batch_size 2 --log.every 5 \
    --run-dir "$WORK/$run" >"$WORK/$run.log"
done
grep -q "on 2 rank(s) (balance lpt)" "$WORK/a.log" && pass "trains on 2 ranks" || fail "$(cat "$WORK/a.log")"
grep -qE "imbalance [0-9.]+" "$WORK/a.log" && pass "progress line shows the imbalance" || fail "no imbalance"
[ "$(grep -c '"imbalance"' "$WORK/a/metrics.jsonl")" -eq 5 ] && pass "metrics.jsonl: one line per step, rank 0 only" ||
  fail "metrics.jsonl: $(wc -l <"$WORK/a/metrics.jsonl") lines"
for group in model buffers optimizer; do
  h5diff "$WORK/a/checkpoints/ckpt-00000005.h5" "$WORK/b/checkpoints/ckpt-00000005.h5" "/$group" "/$group" >/dev/null &&
    pass "/$group bit-identical across two 2-rank runs" || fail "/$group differs between reruns"
done
"$LT" synth --frames 5 --seed 3 --out "$WORK/five" >/dev/null
"$MPIEXEC" -np 2 "$LT" train "${TINY[@]}" --data "$WORK/five" --train.balance bucket --train.steps 4 \
  --train.batch_size 2 --log.every 1 --run-dir "$WORK/bucket" >"$WORK/bucket.log" &&
  grep -q "^step 4/4" "$WORK/bucket.log" && pass "bucket with a partial bucket (a rank with no frames)" ||
  fail "bucket: $(cat "$WORK/bucket.log")"
# A corrupted shard met by a rank's loader mid-run: one error line, every rank exits, no hang.
cp -r "$WORK/train" "$WORK/bad"
flip_middle_byte "$WORK/bad/shard-00000.h5"
expect_rank_errors "corrupted shard during training" "bad/shard-00000.h5: frame synth/seed1/[0-9]+: /(points|labels).*checksum" \
  timeout 120 "$MPIEXEC" -np 2 "$LT" train "${TINY[@]}" --data "$WORK/bad" --train.steps 6 --run-dir "$WORK/badrun"
finish
