#!/usr/bin/env bash
# Data-parallel training (DESIGN.md §7): 2 ranks equal 1 rank on the same global batch, reruns are
# bit-identical, all-reduce buckets overlap backward in the timeline, the watchdog ends a hung job, and
# bad distributed input ends every rank with an error instead of a hang.
LT=$1
source "$(dirname "$0")/lib.sh"
# Debian's python3 (with h5py), whatever python3 comes first on PATH.
COMPARE="/usr/bin/python3 $(dirname "$0")/../../scripts/compare_checkpoints.py"

MODEL=(--model.voxel_size 1.6 --model.point_channels 8,16 --model.bev_channels 8,16,16 --model.head_channels 8
       --log.every 4)
TINY=("${MODEL[@]}" --train.steps 4)
"$LT" synth --frames 16 --seed 1 --out "$WORK/train" >/dev/null
CKPT=checkpoints/ckpt-00000004.h5

# Equivalence: the same global batch of 4 frames on 2 ranks (2 each) and on 1 rank. Without SyncBN each
# rank normalises its own 2 frames, so the 1-rank run takes them as 2 micro-batches (the same slots);
# with SyncBN the 2 ranks normalise over all 4, as 1 rank with a batch of 4 does. The parameters after
# 4 steps are compared as one vector (per tensor, AdamW's normalised update turns float rounding in the
# near-zero gradients of a few small BN biases into differences up to ~6e-5 by then).
EQ=("${MODEL[@]}" --train.steps 4)
EQ_CKPT=checkpoints/ckpt-00000004.h5
for balance in none lpt; do
  "$MPIEXEC" -np 2 "$LT" train "${EQ[@]}" --data "$WORK/train" --train.balance $balance --train.batch_size 2 \
    --run-dir "$WORK/eq2_$balance" >/dev/null
  "$LT" train "${EQ[@]}" --data "$WORK/train" --train.balance $balance --train.batch_size 2 --train.accumulate 2 \
    --run-dir "$WORK/eq1_$balance" >/dev/null
  out=$($COMPARE "$WORK/eq2_$balance/$EQ_CKPT" "$WORK/eq1_$balance/$EQ_CKPT" --rtol 1e-5 --groups model) &&
    pass "$balance: 2 ranks = 1 rank with 2 micro-batches: $out" || fail "$balance without SyncBN: $out"
  "$MPIEXEC" -np 2 "$LT" train "${EQ[@]}" --data "$WORK/train" --train.balance $balance --train.batch_size 2 \
    --train.sync_bn true --run-dir "$WORK/sync2_$balance" >/dev/null
  "$LT" train "${EQ[@]}" --data "$WORK/train" --train.balance $balance --train.batch_size 4 --train.sync_bn true \
    --run-dir "$WORK/sync1_$balance" >/dev/null
  out=$($COMPARE "$WORK/sync2_$balance/$EQ_CKPT" "$WORK/sync1_$balance/$EQ_CKPT" --rtol 1e-5 \
    --groups model buffers) &&
    pass "$balance, SyncBN: 2 ranks = 1 rank with a batch of 4 (BN buffers too): $out" ||
    fail "$balance with SyncBN: $out"
done
# Without the split into micro-batches, per-rank BN makes 2 ranks differ from 1 rank: the check above
# would notice a missing SyncBN.
out=$($COMPARE "$WORK/eq2_lpt/$EQ_CKPT" "$WORK/sync1_lpt/$EQ_CKPT" --rtol 1e-5 --groups model) &&
  fail "per-rank BN and global BN gave the same parameters: $out" || pass "per-rank BN differs from SyncBN"

# Determinism: two runs with the same seed and rank count, SyncBN and micro-batches, are bit-identical.
for run in a b; do
  "$MPIEXEC" -np 2 "$LT" train "${TINY[@]}" --data "$WORK/train" --train.sync_bn true --train.accumulate 2 \
    --train.batch_size 1 --run-dir "$WORK/det_$run" >/dev/null
done
out=$($COMPARE "$WORK/det_a/$CKPT" "$WORK/det_b/$CKPT" --rtol 0 --groups model optimizer buffers) &&
  pass "reruns bit-identical: $out" || fail "reruns differ: $out"

# Overlap: with small buckets, the timeline shows buckets posted, and completed, while backward computes.
"$MPIEXEC" -np 2 "$LT" train "${TINY[@]}" --data "$WORK/train" --train.bucket_mb 0.004 --train.grad_clip 0 \
  --log.timeline "$WORK/timeline.json" --log.prom_file "$WORK/train.prom" --run-dir "$WORK/overlap" >/dev/null
python3 - "$WORK/timeline.json" <<'PY' && pass "timeline: buckets complete while backward still computes" || fail "no overlap in the timeline"
import json, sys
events = [e for e in json.load(open(sys.argv[1]))["traceEvents"] if e["ph"] == "X"]
assert {e["pid"] for e in events} == {0, 1}, "both ranks' events"
overlapped = 0
for rank in (0, 1):
    for step in range(4):
        mine = [e for e in events if e["pid"] == rank and e["args"]["step"] == step]
        backward_end = max(e["ts"] + e["dur"] for e in mine if e["name"].startswith("backward "))
        buckets = [e for e in mine if e["name"].startswith("allreduce bucket")]
        assert len(buckets) > 2, buckets
        overlapped += any(e["ts"] + e["dur"] < backward_end for e in buckets)
assert overlapped >= 4, overlapped  # at least half of the steps
PY
grep -q '^lidartrain_phase_seconds{phase="backward",over_ranks="max"} [0-9]' "$WORK/train.prom" &&
  grep -q '^lidartrain_step 4$' "$WORK/train.prom" && pass "Prometheus file" || fail "prom: $(cat "$WORK/train.prom")"
python3 - "$WORK/overlap/metrics.jsonl" <<'PY' && pass "metrics.jsonl: phases as min/mean/max over ranks" || fail "metrics phases"
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
assert lines[0]["allreduce_bench"]["busbw_GBps"] > 0
steps = [l for l in lines if "step" in l]
assert len(steps) == 4
for l in steps:
    for phase in ("data_wait_s", "forward_s", "backward_s", "allreduce_wait_s", "optimizer_s", "step_s"):
        assert l[phase]["min"] <= l[phase]["mean"] <= l[phase]["max"], (phase, l[phase])
PY

# SyncBN with a rank that gets no frame in a step (bucket over 5 frames, global batch 4: a partial bucket).
"$LT" synth --frames 5 --seed 3 --out "$WORK/five" >/dev/null
"$MPIEXEC" -np 2 "$LT" train "${TINY[@]}" --data "$WORK/five" --train.balance bucket --train.batch_size 2 \
  --train.sync_bn true --run-dir "$WORK/sync_empty" >"$WORK/sync_empty.log" && grep -q "^step 4/4" "$WORK/sync_empty.log" &&
  pass "SyncBN with a rank holding no frames" || fail "SyncBN, empty rank: $(cat "$WORK/sync_empty.log")"

# The watchdog: rank 1 stopped (SIGSTOP) mid-run leaves rank 0 waiting in a collective; after --timeout
# rank 0 aborts the job with a message naming the phase and itself.
"$MPIEXEC" -np 2 "$LT" train "${MODEL[@]}" --data "$WORK/train" --train.steps 100000 --timeout 3 \
  --run-dir "$WORK/hang" >"$WORK/hang.out" 2>"$WORK/hang.err" &
job=$!
rank1=""
for _ in $(seq 1 100); do
  for pid in $(pgrep -f "lidartrain train .*$WORK/hang" || true); do
    tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=1" && rank1=$pid
  done
  [ -n "$rank1" ] && [ -s "$WORK/hang/metrics.jsonl" ] && break
  sleep 0.2
done
kill -STOP "$rank1"
rc=0
timeout 60 bash -c "wait $job" 2>/dev/null || true
for _ in $(seq 1 300); do kill -0 $job 2>/dev/null || break; sleep 0.1; done
if kill -0 $job 2>/dev/null; then
  kill -CONT "$rank1"; kill $job; fail "watchdog: the job still runs 30 s after rank 1 stopped"
else
  wait $job || rc=$?
  grep -qE "^lidartrain: \[rank 0\] fatal: watchdog: .* of step [0-9]+ has not finished after [0-9]+ s" "$WORK/hang.err" &&
    [ "$rc" -ne 0 ] && pass "watchdog aborts a hung job (exit $rc): $(grep watchdog "$WORK/hang.err")" ||
    fail "watchdog: exit $rc, $(cat "$WORK/hang.err")"
fi
kill -KILL "$rank1" 2>/dev/null || true

# Bad distributed input: every affected rank says what is wrong; the job ends.
expect_error "global batch larger than the dataset" "4 rank\(s\) × 1 micro-batch\(es\) × 2 frames = global batch 8 exceeds the 5 frames" \
  timeout 120 "$MPIEXEC" -np 4 --oversubscribe "$LT" train "${TINY[@]}" --data "$WORK/five" --run-dir "$WORK/big"
expect_rank_errors "dataset missing on rank 1" "$WORK/missing: no such dataset" \
  timeout 120 "$MPIEXEC" -np 1 "$LT" train "${TINY[@]}" --data "$WORK/train" --run-dir "$WORK/m" : \
  -np 1 "$LT" train "${TINY[@]}" --data "$WORK/missing" --run-dir "$WORK/m"
grep -q "\[rank 1\]" "$WORK/err.ours" && ! grep -q "\[rank 0\]" "$WORK/err.ours" && pass "only rank 1 reports" ||
  fail "missing dataset: $(cat "$WORK/err.ours")"
cp -r "$WORK/train" "$WORK/other"
"$LT" synth --frames 16 --seed 9 --out "$WORK/seed9" >/dev/null
cp "$WORK/seed9/shard-00000.h5" "$WORK/other/shard-00000.h5"
expect_rank_errors "a shard differing between ranks" "other/shard-00000.h5: differs from rank 0's copy" \
  timeout 120 "$MPIEXEC" -np 1 "$LT" train "${TINY[@]}" --data "$WORK/train" --run-dir "$WORK/d" : \
  -np 1 "$LT" train "${TINY[@]}" --data "$WORK/other" --run-dir "$WORK/d"
[ ! -e "$WORK/d/checkpoints" ] && pass "no checkpoint written by the failed job" || fail "checkpoints left in $WORK/d"
finish
