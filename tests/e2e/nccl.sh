#!/usr/bin/env bash
# train.comm=nccl end to end on emulated GPUs (LIDARTRAIN_CUDA_EMULATION=1: the CUDA kernels and the NCCL
# backend's own source, over the emulated NCCL, run on the CPU): 2 ranks follow 2 CPU ranks, and 1 rank
# with the whole batch, to 1e-5 on both models, with gradient buckets all-reduced on the device during
# backward; an nccl checkpoint resumes on the CPU; a step moves its inputs up and a few scalars down;
# a rank that stalls ends the job through the watchdog, naming the bucket.
LT=$1
source "$(dirname "$0")/lib.sh"

COMPARE="/usr/bin/python3 $(dirname "$0")/../../scripts/compare_checkpoints.py"
SEMSEG=("${TINY_SEMSEG[@]}")
BEVDET=("${TINY_BEVDET[@]}")
"$LT" synth --frames 4 --seed 1 --out "$WORK/train" >/dev/null
# train RANKS DIR STEPS [options…]: batch 1 per rank, buckets of 10 kB (several per step).
train() {
  local ranks=$1 dir=$2 steps=$3
  shift 3
  "$MPIEXEC" -np "$ranks" "$LT" train "$@" --data "$WORK/train" --train.steps "$steps" --train.batch_size 1 \
    --train.augment false --train.bucket_mb 0.01 --log.every 1 --run-dir "$WORK/$dir" >"$WORK/$dir.log" 2>&1 ||
    fail "$dir: $(tail -3 "$WORK/$dir.log")"
}
losses() { python3 -c "import json,sys; print(' '.join('%.9g' % json.loads(l)['loss'] for l in open(sys.argv[1]) if '\"step\"' in l and '\"loss\"' in l))" "$1"; }
close() {  # close A B REL: every pair of the two lists agrees to REL relative
  python3 -c "import sys; a, b = sys.argv[1].split(), sys.argv[2].split(); r = float(sys.argv[3]); sys.exit(0 if len(a) == len(b) > 0 and all(abs(float(x) - float(y)) <= r * abs(float(y)) for x, y in zip(a, b)) else 1)" "$@"
}
norms() { python3 -c "import json,sys; print(' '.join('%.9g' % json.loads(l)['grad_norm'] for l in open(sys.argv[1]) if '\"step\"' in l and '\"grad_norm\"' in l))" "$1"; }
# agree NAME RUN_A RUN_B: losses to 1e-5 and gradient norms (after the all-reduce: what a bucket summed
# late or not at all changes first) to 1e-4.
agree() {
  close "$(losses "$WORK/$2/metrics.jsonl")" "$(losses "$WORK/$3/metrics.jsonl")" 1e-5 &&
    close "$(norms "$WORK/$2/metrics.jsonl")" "$(norms "$WORK/$3/metrics.jsonl")" 1e-4 &&
    pass "$1: losses $(losses "$WORK/$2/metrics.jsonl") vs $(losses "$WORK/$3/metrics.jsonl")" ||
    fail "$1: losses $(losses "$WORK/$2/metrics.jsonl") vs $(losses "$WORK/$3/metrics.jsonl"), gradient norms $(norms "$WORK/$2/metrics.jsonl") vs $(norms "$WORK/$3/metrics.jsonl")"
}
NCCL=(--train.device cuda --train.comm nccl)

# train.comm's bad values: one line naming the key, exit 1, no run directory.
expect_error "nccl on the CPU" "train.comm=nccl needs a CUDA device \(train.device=cuda\) in a build with NCCL; this rank's device is cpu" \
  "$LT" train "${SEMSEG[@]}" --data "$WORK/train" --train.steps 1 --train.device cpu --train.comm nccl --run-dir "$WORK/comm_cpu"
[ ! -e "$WORK/comm_cpu" ] && pass "no run directory for it" || fail "$(ls -R "$WORK/comm_cpu")"
expect_error "an unknown train.comm" "--train.comm: 'xyz' is not one of auto, mpi, nccl" \
  "$LT" train "${SEMSEG[@]}" --data "$WORK/train" --train.steps 1 --train.comm xyz --run-dir "$WORK/comm_xyz"

for model in semseg bevdet; do
  declare -n M=${model^^}
  # SyncBN: 2 ranks of batch 1 are then 1 rank of batch 2 (the MPI equivalence), on either device.
  LIDARTRAIN_CUDA_EMULATION=1 train 2 ${model}_nccl 2 "${M[@]}" "${NCCL[@]}" --train.sync_bn true
  train 2 ${model}_cpu 2 "${M[@]}" --train.device cpu --train.sync_bn true
  "$MPIEXEC" -np 1 "$LT" train "${M[@]}" --data "$WORK/train" --train.steps 2 --train.batch_size 2 \
    --train.augment false --train.sync_bn true --train.device cpu --run-dir "$WORK/${model}_one" >/dev/null
  grep -q "bucket(s) over nccl, device cuda-emulated" "$WORK/${model}_nccl.log" &&
    [ "$(grep -o '[0-9]* all-reduce bucket' "$WORK/${model}_nccl.log" | cut -d' ' -f1)" -gt 1 ] &&
    pass "$model: $(grep -o '[0-9]* all-reduce bucket(s) over nccl' "$WORK/${model}_nccl.log")" ||
    fail "$model: $(head -1 "$WORK/${model}_nccl.log")"
  agree "$model, 2 ranks over nccl = 2 CPU ranks over mpi to 1e-5" ${model}_nccl ${model}_cpu
  agree "$model, 2 ranks over nccl = 1 rank with the whole batch to 1e-5" ${model}_nccl ${model}_one
  unset -n M
done

# SyncBN on GPUs over mpi (its sums staged through the host): as on the CPU too.
LIDARTRAIN_CUDA_EMULATION=1 train 2 semseg_gpu_mpi 2 "${SEMSEG[@]}" --train.device cuda --train.comm mpi --train.sync_bn true
agree "semseg, 2 GPU ranks over mpi = 2 CPU ranks" semseg_gpu_mpi semseg_cpu

# An nccl checkpoint resumes on the CPU and goes on as the CPU run does.
train 2 semseg_nccl 4 "${SEMSEG[@]}" --train.device cpu --train.sync_bn true --resume auto
train 2 semseg_cpu 4 "${SEMSEG[@]}" --train.device cpu --train.sync_bn true --resume auto
grep -q "resumed from .*ckpt-00000002.h5" "$WORK/semseg_nccl.log" && agree "resumed on the CPU, steps 1-4" semseg_nccl semseg_cpu ||
  fail "resume: $(cat "$WORK/semseg_nccl.log")"
$COMPARE --rtol 1e-4 "$WORK/semseg_nccl/checkpoints/ckpt-00000004.h5" "$WORK/semseg_cpu/checkpoints/ckpt-00000004.h5" \
  >"$WORK/cmp.txt" 2>&1 && pass "and ends where the CPU run does (checkpoints to 1e-4)" || fail "$(tail -3 "$WORK/cmp.txt")"

# Without SyncBN (rank 0's BN statistics broadcast on the device): as on the CPU, and after the first
# step a step moves its inputs up and a few scalars down (h2d/d2h bytes/syncs per step, rank 0).
LIDARTRAIN_CUDA_EMULATION=1 train 2 plain_nccl 3 "${SEMSEG[@]}" "${NCCL[@]}"
train 2 plain_cpu 3 "${SEMSEG[@]}" --train.device cpu
agree "without SyncBN, nccl = CPU" plain_nccl plain_cpu
# Exposed communication over nccl is the compute stream's wait for the buckets, timed on the device (the
# emulated all-reduce runs when the compute stream reaches its wait, so it is never 0 there).
waits=$(python3 -c "import json,sys
print(' '.join('%.3g' % json.loads(l)['allreduce_wait_s']['max'] for l in open(sys.argv[1]) if '\"step\"' in l))" "$WORK/plain_nccl/metrics.jsonl")
python3 -c "import sys; w=[float(v) for v in sys.argv[1].split()]; sys.exit(0 if len(w) == 3 and all(v > 0 for v in w) else 1)" "$waits" &&
  pass "allreduce_wait_s over nccl, timed on the device: $waits s" || fail "allreduce_wait_s over nccl: $waits"
ledger=$(python3 -c "import json,sys
rows=[json.loads(l) for l in open(sys.argv[1]) if '\"step\"' in l]
print(' '.join('%d/%d/%d' % (r['h2d_bytes'], r['d2h_bytes'], r['syncs']) for r in rows[1:]))" "$WORK/plain_nccl/metrics.jsonl")
python3 -c "import sys; steps=[[int(v) for v in s.split('/')] for s in sys.argv[1].split()]
sys.exit(0 if len(steps) == 2 and all(u > 0 and d <= 64 and n == 1 for u, d, n in steps) else 1)" "$ledger" &&
  pass "steps 2-3 over nccl: $ledger" || fail "ledger over nccl: $ledger"
# The next step's inputs (staged in pinned memory by the loader thread) were queued for upload during the
# step before, whenever the loader had them ready: with frames this small, every step but the last.
ahead=$(python3 -c "import json,sys
print(' '.join(str(json.loads(l)['inputs_ahead']) for l in open(sys.argv[1]) if '\"step\"' in l))" "$WORK/plain_nccl/metrics.jsonl")
python3 -c "import sys; a=[int(v) for v in sys.argv[1].split()]; sys.exit(0 if len(a) == 3 and sum(a[:2]) >= 1 and a[2] == 0 else 1)" "$ahead" &&
  pass "inputs uploaded ahead, per step: $ahead" || fail "inputs_ahead: $ahead"

# The watchdog over nccl: rank 1 stalls before step 2's backward; rank 0 waits in the bucket's
# all-reduce, and after --timeout aborts the communicator and the job, naming its rank, the step and the bucket.
rc=0
LIDARTRAIN_CUDA_EMULATION=1 LIDARTRAIN_TEST_STALL=1:2 timeout 120 "$MPIEXEC" -np 2 "$LT" train "${SEMSEG[@]}" "${NCCL[@]}" \
  --data "$WORK/train" --train.steps 4 --train.batch_size 1 --train.bucket_mb 0.01 --timeout 10 \
  --run-dir "$WORK/hang" >"$WORK/hang.out" 2>"$WORK/hang.err" || rc=$?
grep -qE "^lidartrain: \[rank 0\] fatal: watchdog: .* of step 2 has not finished after [0-9]+ s \(--timeout 10\): waiting for gradient bucket 0 of [0-9]+ \([0-9.]+ MB\) over nccl" "$WORK/hang.err" &&
  [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && pass "a stalled rank: exit $rc, $(grep watchdog "$WORK/hang.err")" ||
  fail "stalled rank: exit $rc, $(cat "$WORK/hang.err")"
finish
