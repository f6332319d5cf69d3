#!/usr/bin/env bash
# A run that diverges never overwrites good checkpoints: train.on_nonfinite stop (exit 4, nothing written,
# LATEST untouched and intact) and skip (no update, counted, parameters untouched, a stop after too many in
# a row); --resume auto passes over a checkpoint holding NaN; float options must be finite; of an option
# given twice the last wins; thread counts are capped at the CPUs a rank may use.
LT=$1
source "$(dirname "$0")/lib.sh"

write_tiny_model_ini "$WORK/tiny.ini"
"$LT" synth --frames 4 --seed 1 --out "$WORK/train" >/dev/null
run_train() {  # run_train RUN_DIR [options…]
  local dir=$1
  shift
  "$LT" train --config "$WORK/tiny.ini" --data "$WORK/train" --train.batch_size 1 --log.every 1 --checkpoint.every 1 \
    --checkpoint.keep 20 --run-dir "$WORK/$dir" "$@"
}
finite_checkpoint() {  # every float of the checkpoint is finite
  /usr/bin/python3 - "$1" <<'PY'
import sys, h5py, numpy as np
bad = []
with h5py.File(sys.argv[1], 'r') as f:
    f.visititems(lambda n, o: bad.append(n) if isinstance(o, h5py.Dataset) and o.dtype.kind == 'f' and not np.isfinite(o[()]).all() else None)
sys.exit(1 if bad else 0)
PY
}

expect_error "train.lr inf" "--train.lr: must be > 0 and finite" run_train bad --train.lr inf --train.steps 2
expect_error "train.momentum nan" "--train.momentum: must be >= 0 and finite" run_train bad --train.momentum nan

run_train last --train.steps 2 --train.steps 3 >"$WORK/last.log"
grep -q "^step 3/3" "$WORK/last.log" && pass "of --train.steps 2 --train.steps 3 the last wins" || fail "$(cat "$WORK/last.log")"
run_train threads --train.steps 1 --train.threads 100000 >"$WORK/threads.log" 2>"$WORK/threads.err"
cpus=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)  # (nproc itself honours OMP_NUM_THREADS)
grep -q "100000 OpenMP threads asked for .* using $cpus" "$WORK/threads.err" &&
  grep -q "$cpus threads per rank" "$WORK/threads.log" && pass "train.threads 100000: capped at $cpus, with a warning" ||
  fail "threads: $(cat "$WORK/threads.err" "$WORK/threads.log")"

# A good start, then a learning rate that blows the parameters up.
run_train stop --train.steps 2 >/dev/null
rc=0
run_train stop --train.steps 12 --train.lr 1e30 --resume auto >"$WORK/stop.log" 2>"$WORK/stop.err" || rc=$?
latest=$(cat "$WORK/stop/checkpoints/LATEST")
diverged=$(grep -o "step [0-9]*: non-finite" "$WORK/stop.err" | grep -o "[0-9]*")
[ "$rc" -eq 4 ] && [ "$(wc -l <"$WORK/stop.err")" -eq 1 ] && grep -q "the last good checkpoint is .*$latest (LATEST)" "$WORK/stop.err" &&
  pass "on_nonfinite stop: exit 4, one line: $(cat "$WORK/stop.err")" || fail "stop: rc $rc: $(cat "$WORK/stop.err")"
last_written=$(ls "$WORK/stop/checkpoints" | grep -o "[0-9]\{8\}" | sort | tail -1)
[ -n "$diverged" ] && [ "$((10#$last_written))" -lt "$diverged" ] && finite_checkpoint "$WORK/stop/checkpoints/$latest" &&
  pass "nothing written at or after step $diverged; LATEST ($latest) is finite" || fail "checkpoints: $(ls "$WORK/stop/checkpoints")"
# (Its parameters are finite but huge after the step with lr 1e30: the resumed step diverges again.)
"$LT" train --config "$WORK/tiny.ini" --data "$WORK/train" --train.batch_size 1 --run-dir "$WORK/stop" \
  --train.steps "$((10#$last_written + 1))" --resume auto >"$WORK/resume.log" 2>&1 || true
grep -q "resumed from .*$latest" "$WORK/resume.log" && pass "--resume auto takes it" || fail "resume: $(cat "$WORK/resume.log")"

# skip: every later step is skipped and counted; the parameters stay as the last good update left them.
run_train skip --train.steps 2 >/dev/null
run_train skip --train.steps 10 --train.lr 1e30 --train.on_nonfinite skip --train.max_nonfinite_skips 100 \
  --resume auto >"$WORK/skip.log" 2>&1 && pass "on_nonfinite skip: the run completes" || fail "skip: $(cat "$WORK/skip.log")"
skipped=$(grep -c '"skipped":true' "$WORK/skip/metrics.jsonl" || true)
first_skipped=$(grep -m1 '"skipped":true' "$WORK/skip/metrics.jsonl" | grep -o '"step":[0-9]*' | grep -o "[0-9]*")
[ "$skipped" -gt 0 ] && grep -q "\"skipped_steps\":$skipped" "$WORK/skip/metrics.jsonl" &&
  pass "$skipped steps skipped from step $first_skipped on, counted in metrics.jsonl" || fail "no skipped steps recorded"
before=$(printf "%s/skip/checkpoints/ckpt-%08d.h5" "$WORK" "$((first_skipped - 1))")
after="$WORK/skip/checkpoints/ckpt-00000010.h5"
h5diff "$before" "$after" /model >/dev/null && h5diff "$before" "$after" /optimizer >/dev/null &&
  h5diff "$before" "$after" /buffers >/dev/null &&
  pass "skipped steps leave parameters, optimizer state and BN buffers untouched" || fail "skipped steps changed the state"
rc=0
run_train skip2 --train.steps 2 >/dev/null
run_train skip2 --train.steps 12 --train.lr 1e30 --train.on_nonfinite skip --train.max_nonfinite_skips 2 \
  --resume auto >/dev/null 2>"$WORK/skip2.err" || rc=$?
[ "$rc" -eq 4 ] && grep -q "3 steps in a row, more than train.max_nonfinite_skips" "$WORK/skip2.err" &&
  pass "more than max_nonfinite_skips in a row: stop, exit 4" || fail "skip2: rc $rc $(cat "$WORK/skip2.err")"

# --resume auto passes over a checkpoint holding NaN (checksums and all intact) and says so.
good=$(cat "$WORK/skip2/checkpoints/LATEST")
cp "$WORK/skip2/checkpoints/$good" "$WORK/skip2/checkpoints/ckpt-00000099.h5"
/usr/bin/python3 -c "
import h5py, sys
with h5py.File(sys.argv[1], 'r+') as f:
    d = f['model/head.1.weight']; v = d[()]; v.flat[0] = float('nan'); d[...] = v
" "$WORK/skip2/checkpoints/ckpt-00000099.h5"
"$LT" train --config "$WORK/tiny.ini" --data "$WORK/train" --train.batch_size 1 --run-dir "$WORK/skip2" \
  --train.steps 40 --train.lr 1e-3 --resume auto >"$WORK/nan.log" 2>"$WORK/nan.err" || true
grep -q "ckpt-00000099.h5: .*head.1.weight: holds non-finite values.*damaged, skipped" "$WORK/nan.err" &&
  grep -q "resumed from .*$good" "$WORK/nan.log" && pass "a NaN checkpoint is passed over: $(head -1 "$WORK/nan.err")" ||
  fail "NaN checkpoint: $(cat "$WORK/nan.err" "$WORK/nan.log" | head -5)"
finish
