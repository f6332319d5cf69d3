#!/usr/bin/env bash
# train.precision end to end on emulated GPUs (LIDARTRAIN_CUDA_EMULATION=1: every GEMM's inputs rounded to
# bf16 or fp16 by the conversion kernel, as the GPU's cublasGemmEx reads them, summed in fp32): each
# precision trains through the command line (the 30-step comparison with fp32 is a unit test,
# tests/test_device_models.cpp); fp16's dynamic loss scaler grows after good steps, backs off and skips on
# an overflow (the parameters untouched), stops a run that only overflows, and goes on from a checkpoint
# where it was; infer and eval take --precision; the CPU refuses 16-bit matmuls, and fp32 the scaler's keys.
LT=$1
source "$(dirname "$0")/lib.sh"

SEMSEG=("${TINY_SEMSEG[@]}")
BEVDET=("${TINY_BEVDET[@]}")
"$LT" synth --frames 6 --seed 1 --out "$WORK/train" >/dev/null
export LIDARTRAIN_CUDA_EMULATION=1
train() {  # train DIR STEPS [options…]: batch 2 on the emulated GPU
  local dir=$1 steps=$2
  shift 2
  "$LT" train --data "$WORK/train" --train.steps "$steps" --train.batch_size 2 --train.device cuda --log.every 1 \
    --run-dir "$WORK/$dir" "$@" >"$WORK/$dir.log" 2>&1 || fail "$dir: $(tail -3 "$WORK/$dir.log")"
}
field() {  # field DIR KEY: the key of every step line of metrics.jsonl
  python3 -c "import json,sys; print(' '.join(str(j.get(sys.argv[2])) for j in map(json.loads, open(sys.argv[1])) if 'loss' in j and 'step' in j))" "$WORK/$1/metrics.jsonl" "$2"
}
last5() { python3 -c "import sys; v=[float(x) for x in sys.argv[1].split()][-5:]; print(sum(v) / len(v))" "$(field "$1" loss)"; }

# ---- each precision through the command line (30-step curves: tests/test_device_models.cpp) ----
for p in fp32 bf16 fp16; do train "bevdet-$p" 4 "${BEVDET[@]}" --train.precision "$p"; done
grep -q "^step 4/4" "$WORK/bevdet-bf16.log" && grep -q "^step 4/4" "$WORK/bevdet-fp16.log" &&
  [ "$(field bevdet-fp32 loss)" != "$(field bevdet-bf16 loss)" ] && [ "$(field bevdet-bf16 loss)" != "$(field bevdet-fp16 loss)" ] &&
  pass "bf16 and fp16 train, each its own bits: $(field bevdet-fp32 loss) / $(field bevdet-bf16 loss) / $(field bevdet-fp16 loss)" ||
  fail "precisions: $(tail -2 "$WORK/bevdet-bf16.log") $(field bevdet-bf16 loss)"
[[ "$(field bevdet-fp16 loss_scale)" == 65536* ]] && [ "$(field bevdet-fp32 loss_scale | tr ' ' '\n' | sort -u)" = "None" ] &&
  pass "fp16: the loss scale of each step in metrics.jsonl, from 65536: $(field bevdet-fp16 loss_scale)" ||
  fail "fp16 loss scales: $(field bevdet-fp16 loss_scale)"

# ---- the loss scaler ----
# From 1, doubled after every 2 good steps (growth interval 2): 1 1 2 2 4 4.
train grow 6 "${BEVDET[@]}" --train.precision fp16 --train.loss_scale 1 --train.loss_scale_growth_interval 2
[ "$(field grow loss_scale)" = "1 1 2 2 4 4" ] && [ "$(field grow skipped | tr " " "\n" | sort -u)" = "False" ] &&
  pass "growth after 2 good steps: $(field grow loss_scale)" || fail "growth: $(field grow loss_scale) / $(field grow skipped)"
# An overflow (a scale of 1e30 overflows fp16's 65504 at once): skipped, halved, the state untouched.
train overflow 3 "${BEVDET[@]}" --train.precision fp16 --train.loss_scale 1e30 --train.max_nonfinite_skips 10 \
  --checkpoint.every 1 --checkpoint.keep 5
[ "$(field overflow loss_scale)" = "1e+30 5e+29 2.5e+29" ] && [ "$(field overflow skipped)" = "True True True" ] &&
  [ "$(field overflow skipped_steps)" = "1 2 3" ] &&
  pass "an overflow skips the step and halves the scale: $(field overflow loss_scale)" ||
  fail "overflow: $(field overflow loss_scale) / $(field overflow skipped) / $(field overflow skipped_steps)"
C1=$WORK/overflow/checkpoints/ckpt-00000001.h5 C3=$WORK/overflow/checkpoints/ckpt-00000003.h5
h5diff "$C1" "$C3" /model >/dev/null && h5diff "$C1" "$C3" /optimizer >/dev/null && h5diff "$C1" "$C3" /buffers >/dev/null &&
  pass "skipped steps leave parameters, optimizer state and BN buffers untouched" || fail "skipped steps changed the state"
[ "$(h5dump -d /state/loss_scaler -y "$C3" | grep -Eo '[0-9.e+-]+' | tail -2 | tr '\n' ' ')" = "1.25e+29 0 " ] &&
  pass "the checkpoint holds the scaler: 1.25e+29, 0 steps since an overflow" ||
  fail "/state/loss_scaler: $(h5dump -d /state/loss_scaler "$C3" | tail -4)"
# Only overflows: the guard stops the run, exit 4, no checkpoint of it.
rc=0
"$LT" train "${BEVDET[@]}" --data "$WORK/train" --train.steps 20 --train.batch_size 2 --train.device cuda \
  --train.precision fp16 --train.loss_scale 1e30 --run-dir "$WORK/stuck" >/dev/null 2>"$WORK/stuck.err" || rc=$?
[ "$rc" = 4 ] && grep -q "non-finite gradient norm .*6 steps in a row, more than train.max_nonfinite_skips) at fp16 loss scales down to 3.125e+28" "$WORK/stuck.err" &&
  [ -z "$(ls "$WORK/stuck/checkpoints" 2>/dev/null)" ] && pass "a run that only overflows stops: $(cat "$WORK/stuck.err")" ||
  fail "stuck: exit $rc: $(cat "$WORK/stuck.err")"
# Resumed, the scaler goes on where it was: 3 steps (1 1 2, then 1 good step at 2), then 3 more: 2 4 4.
train resumed 3 "${BEVDET[@]}" --train.precision fp16 --train.loss_scale 1 --train.loss_scale_growth_interval 2
train resumed 6 "${BEVDET[@]}" --train.precision fp16 --train.loss_scale 1 --train.loss_scale_growth_interval 2 --resume auto
[ "$(field resumed loss_scale)" = "1 1 2 2 4 4" ] && pass "the scale restored on resume: $(field resumed loss_scale)" ||
  fail "resumed scales: $(field resumed loss_scale)"
# Checkpoints are fp32: an fp16 one continues in bf16 (starting without a scaler).
train resumed 7 "${BEVDET[@]}" --train.precision bf16 --resume auto
[ "$(field resumed loss_scale | awk '{print $NF}')" = "None" ] && pass "an fp16 checkpoint resumes in bf16" ||
  fail "bf16 resume: $(field resumed loss_scale)"

# ---- infer and eval ----
train semseg 2 "${SEMSEG[@]}"
CKPT=$WORK/semseg/checkpoints/ckpt-00000002.h5
"$LT" eval --checkpoint "$CKPT" --data "$WORK/train" --device cuda --json "$WORK/e32.json" >/dev/null
"$LT" eval --checkpoint "$CKPT" --data "$WORK/train" --device cuda --precision bf16 --json "$WORK/e16.json" >/dev/null
python3 -c "import sys; a, b = float(sys.argv[1]), float(sys.argv[2]); sys.exit(0 if abs(a - b) <= 0.02 else 1)" \
  "$(json_get "$WORK/e16.json" "j['miou']")" "$(json_get "$WORK/e32.json" "j['miou']")" &&
  pass "eval --precision bf16: mIoU $(json_get "$WORK/e16.json" "j['miou']"), fp32 $(json_get "$WORK/e32.json" "j['miou']")" ||
  fail "eval bf16: $(json_get "$WORK/e16.json" "j['miou']") vs $(json_get "$WORK/e32.json" "j['miou']")"
"$LT" infer --checkpoint "$CKPT" --data "$WORK/train" --out "$WORK/inf16" --device cuda --precision fp16 >/dev/null &&
  [ -n "$(ls "$WORK/inf16")" ] && pass "infer --data --precision fp16" || fail "infer fp16"

# ---- refusals ----
unset LIDARTRAIN_CUDA_EMULATION
expect_error "bf16 on the CPU" "--train.precision=bf16: 16-bit matmuls are a GPU's and the device is cpu" \
  "$LT" train "${BEVDET[@]}" --data "$WORK/train" --train.steps 1 --train.precision bf16 --run-dir "$WORK/cpu"
[ ! -e "$WORK/cpu/checkpoints" ] && pass "nothing trained" || fail "$(ls -R "$WORK/cpu")"
expect_error "infer --precision fp16 on the CPU" "--precision=fp16: 16-bit matmuls are a GPU's" \
  "$LT" infer --checkpoint "$CKPT" --input "$WORK/frame.bin" --out "$WORK/x.label" --precision fp16
expect_error "a precision that is not one" "--train.precision: 'fp8' is not a precision \(fp32 \| bf16 \| fp16\)" \
  "$LT" train "${BEVDET[@]}" --data "$WORK/train" --train.steps 1 --train.precision fp8 --run-dir "$WORK/fp8"
expect_error "the scaler's keys without fp16" "--train.loss_scale, --train.loss_scale_growth_interval: only with train.precision fp16 \(this run is bf16\)" \
  "$LT" train "${BEVDET[@]}" --data "$WORK/train" --train.steps 1 --train.precision bf16 --train.loss_scale 1024 --run-dir "$WORK/ls"
finish
