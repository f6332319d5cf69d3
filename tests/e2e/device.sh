#!/usr/bin/env bash
# train.device / --device: the CPU by default where there is no GPU (bit for bit as --device cpu), one
# clear error for cuda without a GPU; and the GPU path end to end on the emulated CUDA build
# (LIDARTRAIN_CUDA_EMULATION=1: the same kernels run on the CPU): training that follows the CPU's losses,
# checkpoints that move between the devices, eval and infer, 2 ranks, and out-of-memory.
LT=$1
DATA=$2
source "$(dirname "$0")/lib.sh"

CFG="$(dirname "$0")/../../configs/semseg_small.ini"
COMPARE="/usr/bin/python3 $(dirname "$0")/../../scripts/compare_checkpoints.py"
TINY=(--model.voxel_size 3.2 --model.point_channels 8,16 --model.bev_channels 8,16,16 --model.head_channels 8)
"$LT" synth --frames 4 --seed 1 --out "$WORK/train" >/dev/null
run_train() {  # run_train RUN_DIR STEPS [options…]
  local dir=$1 steps=$2
  shift 2
  "$LT" train --config "$CFG" "${TINY[@]}" --data "$WORK/train" --train.steps "$steps" --train.batch_size 1 \
    --log.every 1 --train.augment false --run-dir "$WORK/$dir" "$@" >"$WORK/$dir.log"
}
losses() { python3 -c "import json,sys; print(' '.join('%.6g' % json.loads(l)['loss'] for l in open(sys.argv[1]) if '\"step\"' in l and '\"loss\"' in l))" "$1"; }
close() {  # close A B REL: every pair of the two lists agrees to REL relative
  python3 -c "import sys; a, b = sys.argv[1].split(), sys.argv[2].split(); r = float(sys.argv[3]); sys.exit(0 if len(a) == len(b) and all(abs(float(x) - float(y)) <= r * abs(float(y)) for x, y in zip(a, b)) else 1)" "$@"
}

# ---- without a GPU ----
expect_error "train.device=cuda without a GPU" "train.device=cuda: no CUDA device is usable here" \
  run_train nogpu 4 --train.device cuda
[ ! -e "$WORK/nogpu" ] && pass "nothing written for it" || fail "run dir written: $(ls -R "$WORK/nogpu")"
expect_error "a device that is not one" "train.device.*'tpu'" run_train bad 4 --train.device tpu
run_train auto 4 --train.device auto
run_train cpu 4 --train.device cpu
expect_error "eval --device cuda without a GPU" "--device=cuda: no CUDA device" \
  "$LT" eval --checkpoint "$WORK/cpu/checkpoints/ckpt-00000004.h5" --data "$WORK/train" --device cuda
grep -q "device cpu$" "$WORK/auto.log" && pass "auto is the CPU here" || fail "auto: $(head -1 "$WORK/auto.log")"
h5diff "$WORK/auto/checkpoints/ckpt-00000004.h5" "$WORK/cpu/checkpoints/ckpt-00000004.h5" /model >/dev/null &&
  h5diff "$WORK/auto/checkpoints/ckpt-00000004.h5" "$WORK/cpu/checkpoints/ckpt-00000004.h5" /optimizer >/dev/null &&
  pass "auto = cpu, bit for bit" || fail "auto and cpu checkpoints differ"

# ---- the GPU path on the emulated CUDA kernels ----
export LIDARTRAIN_CUDA_EMULATION=1
run_train gpu 4 --train.device cuda
grep -q "device cuda-emulated" "$WORK/gpu.log" && pass "trains on the (emulated) GPU" || fail "$(head -1 "$WORK/gpu.log")"
close "$(losses "$WORK/gpu/metrics.jsonl")" "$(losses "$WORK/cpu/metrics.jsonl")" 1e-3 &&
  pass "GPU losses follow the CPU's to 1e-3: $(losses "$WORK/gpu/metrics.jsonl") vs $(losses "$WORK/cpu/metrics.jsonl")" ||
  fail "losses: $(losses "$WORK/gpu/metrics.jsonl") vs $(losses "$WORK/cpu/metrics.jsonl")"
# The transfer ledger per step (metrics.jsonl): resident on the device, a step after the first moves its
# inputs up and its scalars down in one wait (loss share, global loss, norm²), whatever the model's size:
# a model 4× as wide moves the same bytes. The CPU moves nothing.
ledger() { python3 -c "import json,sys
rows=[json.loads(l) for l in open(sys.argv[1]) if '\"step\"' in l]
print(' '.join('%d/%d/%d' % (r['h2d_bytes'], r['d2h_bytes'], r['syncs']) for r in rows))" "$1"; }
WIDE=(--model.point_channels 32,64 --model.bev_channels 32,64,64 --model.head_channels 32)
run_train wide 4 --train.device cuda "${WIDE[@]}"
narrow=$(ledger "$WORK/gpu/metrics.jsonl" | cut -d' ' -f2-) wide=$(ledger "$WORK/wide/metrics.jsonl" | cut -d' ' -f2-)
python3 -c "import sys; steps=[[int(v) for v in s.split('/')] for s in sys.argv[1].split()]
sys.exit(0 if len(steps) == 3 and all(u > 0 and d <= 64 and n == 1 for u, d, n in steps) else 1)" "$narrow" &&
  [ "$narrow" = "$wide" ] &&
  pass "steps 2-4 move the inputs up and 3 scalars down in one wait (h2d/d2h bytes/syncs): $narrow; 4× wider: the same" ||
  fail "ledger: narrow $narrow, wide $wide"
[ "$(ledger "$WORK/cpu/metrics.jsonl")" = "0/0/0 0/0/0 0/0/0 0/0/0" ] && pass "the CPU moves nothing" ||
  fail "CPU ledger: $(ledger "$WORK/cpu/metrics.jsonl")"
# (AdamW's normalised update amplifies the rounding in near-zero gradients: the overall difference.)
$COMPARE --rtol 1e-3 "$WORK/gpu/checkpoints/ckpt-00000004.h5" \
  "$WORK/cpu/checkpoints/ckpt-00000004.h5" >"$WORK/cmp.txt" 2>&1 && pass "GPU and CPU checkpoints agree to 1e-3" ||
  fail "checkpoints: $(tail -3 "$WORK/cmp.txt")"
# A GPU checkpoint resumes on the CPU, and a CPU one on the GPU: one schema.
run_train gpu2 2 --train.device cuda
run_train gpu2 4 --train.device cpu --resume auto
grep -q "resumed from .*ckpt-00000002.h5" "$WORK/gpu2.log" && pass "GPU checkpoint resumed on the CPU" ||
  fail "$(cat "$WORK/gpu2.log")"
run_train cpu2 2 --train.device cpu
run_train cpu2 4 --train.device cuda --resume auto
grep -q "resumed from .*ckpt-00000002.h5" "$WORK/cpu2.log" && pass "CPU checkpoint resumed on the GPU" ||
  fail "$(cat "$WORK/cpu2.log")"
# The same history on the CPU alone (2 steps of a 2-step schedule, then resumed to 4).
run_train ref 2 --train.device cpu
run_train ref 4 --train.device cpu --resume auto
for dir in gpu2 cpu2; do
  $COMPARE --rtol 1e-3 "$WORK/$dir/checkpoints/ckpt-00000004.h5" \
    "$WORK/ref/checkpoints/ckpt-00000004.h5" >"$WORK/cmp.txt" 2>&1 && pass "$dir ends where the CPU alone does" ||
    fail "$dir: $(tail -3 "$WORK/cmp.txt")"
done

# eval and infer on the GPU give the CPU's numbers.
CKPT="$WORK/cpu/checkpoints/ckpt-00000004.h5"
"$LT" eval --checkpoint "$CKPT" --data "$WORK/train" --device cpu --json "$WORK/eval_cpu.json" >/dev/null
"$LT" eval --checkpoint "$CKPT" --data "$WORK/train" --device cuda --json "$WORK/eval_gpu.json" >/dev/null
close "$(json_get "$WORK/eval_gpu.json" "j['miou']")" "$(json_get "$WORK/eval_cpu.json" "j['miou']")" 1e-3 &&
  pass "eval --device cuda: mIoU $(json_get "$WORK/eval_gpu.json" "j['miou']") as on the CPU" ||
  fail "eval: $(json_get "$WORK/eval_gpu.json" "j['miou']") vs $(json_get "$WORK/eval_cpu.json" "j['miou']")"
BIN="$DATA/semantickitti/velodyne/000000.bin"
"$LT" infer --checkpoint "$CKPT" --input "$BIN" --out "$WORK/cpu.label" --device cpu >/dev/null
"$LT" infer --checkpoint "$CKPT" --input "$BIN" --out "$WORK/gpu.label" --device cuda --bench 1 >"$WORK/infer.log"
python3 - "$WORK/cpu.label" "$WORK/gpu.label" <<'PY' && pass "infer --device cuda: the CPU's labels" || fail "infer labels differ"
import sys
a, b = open(sys.argv[1], 'rb').read(), open(sys.argv[2], 'rb').read()
same = sum(a[i:i + 4] == b[i:i + 4] for i in range(0, len(a), 4))
sys.exit(0 if len(a) == len(b) and same >= 0.999 * len(a) / 4 else 1)
PY
grep -q "on cuda-emulated" "$WORK/infer.log" && pass "infer --bench names the device" || fail "$(cat "$WORK/infer.log")"

# 2 ranks, each on its (emulated) GPU, with SyncBN: as on the CPU.
"$MPIEXEC" -np 2 "$LT" train --config "$CFG" "${TINY[@]}" --data "$WORK/train" --train.steps 2 --train.batch_size 1 \
  --train.sync_bn true --train.augment false --train.device cuda --run-dir "$WORK/gpu_np2" >/dev/null
"$MPIEXEC" -np 2 "$LT" train --config "$CFG" "${TINY[@]}" --data "$WORK/train" --train.steps 2 --train.batch_size 1 \
  --train.sync_bn true --train.augment false --train.device cpu --run-dir "$WORK/cpu_np2" >/dev/null
$COMPARE --rtol 1e-4 "$WORK/gpu_np2/checkpoints/ckpt-00000002.h5" \
  "$WORK/cpu_np2/checkpoints/ckpt-00000002.h5" >"$WORK/cmp.txt" 2>&1 && pass "2 ranks with SyncBN on GPUs = on CPUs" ||
  fail "np2: $(tail -3 "$WORK/cmp.txt")"

# GPUs per rank: a rank takes the one GPU it is given, else that of its node-local rank; two ranks on one
# GPU, or a list of none, is one clear error. (The emulated node has the GPUs CUDA_VISIBLE_DEVICES lists.)
"$MPIEXEC" -np 2 -x CUDA_VISIBLE_DEVICES=2,5 "$LT" train --config "$CFG" "${TINY[@]}" --data "$WORK/train" \
  --train.steps 1 --train.batch_size 1 --train.device cuda --run-dir "$WORK/gpus25" >"$WORK/gpus25.log" 2>&1
grep -q "GPU of each rank: 0: emulated 2, 1: emulated 5" "$WORK/gpus25.log" &&
  pass "2 ranks, 2 visible GPUs: $(grep -o 'GPU of each rank: .*' "$WORK/gpus25.log")" || fail "$(cat "$WORK/gpus25.log")"
CUDA_VISIBLE_DEVICES=3 run_train onegpu 1 --train.device cuda
grep -q "GPU of each rank: 0: emulated 3" "$WORK/onegpu.log" && pass "1 rank given GPU 3: it takes it" ||
  fail "$(cat "$WORK/onegpu.log")"
expect_error "2 ranks, 1 GPU" "ranks 0 and 1 on .* would share GPU emulated 0: start at most one rank per GPU" \
  "$MPIEXEC" -np 2 -x CUDA_VISIBLE_DEVICES=0 "$LT" train --config "$CFG" "${TINY[@]}" --data "$WORK/train" \
  --train.steps 1 --train.batch_size 1 --train.device cuda --run-dir "$WORK/shared"
[ ! -e "$WORK/shared/checkpoints" ] && pass "nothing trained on a shared GPU" || fail "$(ls -R "$WORK/shared")"
CUDA_VISIBLE_DEVICES= expect_error "no GPU listed" "train.device=cuda: no CUDA device is usable here" \
  run_train nonelisted 1 --train.device cuda

# A step that is not finite on the GPU (lr 1e30 blows the parameters up): the gate the device makes from
# the global norm and loss skips the update there, the host learns it from the step's one read and counts
# it; the skipped steps leave parameters, optimizer state and BN buffers as the last good step left them.
run_train gskip 2 --train.device cuda --checkpoint.every 1 --checkpoint.keep 20
run_train gskip 6 --train.device cuda --checkpoint.every 1 --checkpoint.keep 20 --train.lr 1e30 \
  --train.on_nonfinite skip --train.max_nonfinite_skips 100 --resume auto
first_skipped=$(grep -m1 '"skipped":true' "$WORK/gskip/metrics.jsonl" | grep -o '"step":[0-9]*' | grep -o "[0-9]*")
before=$(printf "%s/gskip/checkpoints/ckpt-%08d.h5" "$WORK" "$((first_skipped - 1))")
after="$WORK/gskip/checkpoints/ckpt-00000006.h5"
[ -n "$first_skipped" ] && grep -q '"skipped_steps":[1-9]' "$WORK/gskip/metrics.jsonl" &&
  h5diff "$before" "$after" /model >/dev/null && h5diff "$before" "$after" /optimizer >/dev/null &&
  h5diff "$before" "$after" /buffers >/dev/null &&
  pass "on the GPU, steps skipped from step $first_skipped on leave the state untouched" ||
  fail "GPU skip: first skipped '$first_skipped': $(grep -o '"skipped[a-z_]*":[a-z0-9]*' "$WORK/gskip/metrics.jsonl" | tr '\n' ' ')"

# Out of device memory: one line naming the step and the bytes, exit 1, no checkpoint.
LIDARTRAIN_CUDA_EMULATION_MEMORY=3000000 expect_error "out of device memory" \
  "step 1: out of memory on cuda-emulated: asked for [0-9]+ bytes" run_train oom 4 --train.device cuda
[ -z "$(ls "$WORK/oom/checkpoints" 2>/dev/null)" ] && pass "no checkpoint after it" || fail "$(ls "$WORK/oom/checkpoints")"
finish
