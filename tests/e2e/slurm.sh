#!/usr/bin/env bash
# The Slurm path on a real (local, one-node) Slurm cluster: slurm/train.sbatch with 2 tasks runs to
# completion; the same job preempted with `scancel --signal=USR1 --batch` checkpoints, requeues itself,
# resumes and ends with parameters identical to the uninterrupted job's; slurm/infer.sbatch preempted
# the same way requeues and ends with the outputs of an uninterrupted infer --data; slurm/submit_scaling.sh's
# jobs write the scaling table.
LT=$(realpath "$1")
source "$(dirname "$0")/lib.sh"
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
COMPARE="/usr/bin/python3 $ROOT/scripts/compare_checkpoints.py"
export LIDARTRAIN=$LT
bash "$ROOT/slurm/local-cluster.sh" start
trap 'bash "$ROOT/slurm/local-cluster.sh" stop >/dev/null 2>&1 || true; rm -rf "$WORK"' EXIT

write_tiny_model_ini "$WORK/tiny.ini"
cat >>"$WORK/tiny.ini" <<'INI'
[train]
steps = 30
batch_size = 1
[checkpoint]
every = 2
keep = 2
[log]
every = 1
INI
"$LT" synth --frames 16 --seed 1 --out "$WORK/train" >/dev/null

submit() { sbatch --parsable --chdir="$WORK" --output="$WORK/job-%j.out" --ntasks=2 --cpus-per-task=1 "$@"; }
wait_job() {  # id: until it has left the queue (at most 5 minutes)
  for _ in $(seq 1 1500); do [ -z "$(squeue -h -j "$1" 2>/dev/null)" ] && return 0; sleep 0.2; done
  fail "job $1 still queued after 5 minutes: $(squeue -j "$1")"
  scancel "$1"
}
# Slurm makes a requeued job wait about two minutes (its BeginTime: `squeue` says "(BeginTime)") before it
# may start again; on a cluster that is nothing next to a preemption, here it was most of this test. Once the
# job is back in the queue, the test lets it start at once (root may: scontrol update StartTime=now).
release_requeued() {  # id
  for _ in $(seq 1 1500); do
    case "$(squeue -h -j "$1" -o %T 2>/dev/null)" in
      PENDING) scontrol update JobId="$1" StartTime=now >/dev/null 2>&1 && return 0 ;;
      "") return 0 ;;  # gone without a requeue: wait_job and the checks say what happened
    esac
    sleep 0.2
  done
}
steps_done() {
  local n
  n=$(grep -c '"loss"' "$1/metrics.jsonl" 2>/dev/null)
  echo "${n:-0}"
}
LAST=checkpoints/ckpt-00000030.h5

ref=$(submit "$ROOT/slurm/train.sbatch" "$WORK/tiny.ini" --data "$WORK/train" --run-dir "$WORK/ref")
wait_job "$ref"
grep -q "lidartrain exited 0" "$WORK/job-$ref.out" && [ -f "$WORK/ref/$LAST" ] &&
  pass "sbatch train.sbatch, 2 tasks: ran to step 30" || fail "uninterrupted job: $(cat "$WORK/job-$ref.out")"

# The script's own defaults (--resume auto, --run-dir) give way to the user's flags: the last one wins.
ovr=$(submit "$ROOT/slurm/train.sbatch" "$WORK/tiny.ini" --data "$WORK/train" --run-dir "$WORK/ovr" --resume none \
  --train.steps 4)
wait_job "$ovr"
grep -q "lidartrain exited 0" "$WORK/job-$ovr.out" && [ -f "$WORK/ovr/checkpoints/ckpt-00000004.h5" ] &&
  [ ! -f "$WORK/ovr/checkpoints/ckpt-00000006.h5" ] &&
  pass "sbatch train.sbatch CONFIG --resume none --train.steps 4: the user's flags win" ||
  fail "overrides: $(cat "$WORK/job-$ovr.out")"

pre=$(submit "$ROOT/slurm/train.sbatch" "$WORK/tiny.ini" --data "$WORK/train" --run-dir "$WORK/pre")
for _ in $(seq 1 600); do [ "$(steps_done "$WORK/pre")" -ge 5 ] && break; sleep 0.1; done
scancel --signal=USR1 --batch "$pre"
release_requeued "$pre"
wait_job "$pre"
out="$WORK/job-$pre.out"
grep -q "requeueing job $pre" "$out" && grep -q "restart 1" "$out" && grep -q "resumed from .*ckpt-" "$out" &&
  grep -q "lidartrain exited 0" "$out" &&
  pass "USR1: checkpointed at step $(grep -o 'stopping after step [0-9]*' "$out" | grep -o '[0-9]*$'), requeued, resumed, finished" ||
  fail "preempted job: $(cat "$out")"
result=$($COMPARE "$WORK/ref/$LAST" "$WORK/pre/$LAST" --rtol 0 --groups model buffers optimizer state) &&
  pass "preempted and requeued job = uninterrupted job, bit for bit: $result" || fail "after requeue: $result"

# Inference over a dataset, preempted half-way: the ranks finish their frame, exit 75, the job requeues and
# the rerun makes only the missing frames (the full semseg_small model: long enough to preempt).
"$LT" synth --frames 64 --seed 5 --out "$WORK/infer_data" >/dev/null
"$LT" train --config "$ROOT/configs/semseg_small.ini" --data "$WORK/train" --train.steps 1 --train.batch_size 1 \
  --run-dir "$WORK/infer_run" >/dev/null
CK="$WORK/infer_run/checkpoints/ckpt-00000001.h5"
"$LT" infer --checkpoint "$CK" --data "$WORK/infer_data" --out "$WORK/infer_ref" >/dev/null
inf=$(submit "$ROOT/slurm/infer.sbatch" "$CK" "$WORK/infer_data" "$WORK/infer_out")
for _ in $(seq 1 600); do [ "$(find "$WORK/infer_out" -name '*.label' 2>/dev/null | wc -l)" -ge 6 ] && break; sleep 0.05; done
scancel --signal=USR1 --batch "$inf"
release_requeued "$inf"
wait_job "$inf"
out="$WORK/job-$inf.out"
grep -q "requeueing job $inf" "$out" && grep -q "restart 1" "$out" && grep -q "lidartrain exited 0" "$out" &&
  diff -r -x manifest.json -x predictions "$WORK/infer_ref" "$WORK/infer_out" >/dev/null &&
  [ "$(json_get "$WORK/infer_out/manifest.json" "j['skipped'] > 0 and j['done'] + j['skipped'] == 64")" = True ] &&
  pass "infer.sbatch, USR1: stopped (exit 75), requeued, finished with the uninterrupted run's files ($(grep -o '[0-9]* made, [0-9]* already there' "$out" | tail -1))" ||
  fail "preempted infer job: $(cat "$out")"

# GPUs as GRES (local-cluster.sh declares 4 on /dev/tty0-3; the ranks run on emulated GPUs): with
# --gpus-per-task=1 Slurm gives each task its own CUDA_VISIBLE_DEVICES, each rank takes the one GPU it sees,
# and the result is the mpirun run's (same kernels, same ranks), bit for bit. Two tasks given one GPU
# between them is one clear error.
write_tiny_model_ini "$WORK/gpu.ini"
cat >>"$WORK/gpu.ini" <<'INI'
[train]
steps = 2
batch_size = 1
device = cuda
INI
gpu=$(LIDARTRAIN_CUDA_EMULATION=1 submit --gpus-per-task=1 "$ROOT/slurm/train.sbatch" "$WORK/gpu.ini" \
  --data "$WORK/train" --run-dir "$WORK/gpu")
LIDARTRAIN_CUDA_EMULATION=1 OMP_NUM_THREADS=1 $MPIEXEC -np 2 "$LT" train --config "$WORK/gpu.ini" --data "$WORK/train" \
  --run-dir "$WORK/gpu_mpirun" >"$WORK/gpu_mpirun.log" 2>&1 || fail "mpirun on emulated GPUs: $(cat "$WORK/gpu_mpirun.log")"
wait_job "$gpu"
out="$WORK/job-$gpu.out"
grep -q "GPU of each rank: 0: emulated 0, 1: emulated 1" "$out" && grep -q "lidartrain exited 0" "$out" &&
  pass "sbatch --gpus-per-task=1, 2 tasks: $(grep -o 'GPU of each rank: .*' "$out")" || fail "GPU job: $(cat "$out")"
result=$($COMPARE "$WORK/gpu/checkpoints/ckpt-00000002.h5" "$WORK/gpu_mpirun/checkpoints/ckpt-00000002.h5" --rtol 0 \
  --groups model buffers optimizer state) && pass "the Slurm GPU job = the mpirun run, bit for bit: $result" ||
  fail "Slurm GPU job against mpirun: $result"
shared=$(LIDARTRAIN_CUDA_EMULATION=1 submit --gres=gpu:1 "$ROOT/slurm/train.sbatch" "$WORK/gpu.ini" \
  --data "$WORK/train" --run-dir "$WORK/gpu_shared")
wait_job "$shared"
out="$WORK/job-$shared.out"
grep -q "ranks 0 and 1 on .* would share GPU emulated 0: start at most one rank per GPU" "$out" &&
  ! grep -q "lidartrain exited 0" "$out" && [ ! -e "$WORK/gpu_shared/checkpoints" ] &&
  pass "2 tasks on one GPU (--gres=gpu:1): $(grep -o 'ranks 0 and 1 .*per GPU' "$out" | head -1)" ||
  fail "2 tasks on one GPU: $(cat "$out")"

plot=$(SCALING_RANKS="1 2" SCALING_STEPS=4 bash "$ROOT/slurm/submit_scaling.sh" "$WORK/scaling" "$WORK/train" "$WORK/tiny.ini")
wait_job "$plot"
[ "$(grep -c '^| strong\|^| weak' "$WORK/scaling/scaling.md" 2>/dev/null)" = 4 ] && [ -s "$WORK/scaling/scaling.png" ] &&
  pass "slurm scaling jobs: scaling.md with 4 runs and scaling.png" ||
  fail "scaling: $(cat "$WORK/scaling/"*.out 2>/dev/null | tail -20)"
finish
