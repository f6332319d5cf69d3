#!/usr/bin/env bash
# Restartable training (DESIGN.md §8): a run killed with SIGKILL at a random step and resumed with
# --resume auto ends bit-identical to an uninterrupted run, with the same losses after the restart, on
# 1 and 2 ranks; SIGUSR1 checkpoints and exits with the requeue code (75) and the resume is again
# bit-identical; a run moves between 2 and 1 ranks; damaged checkpoints are passed over; a checkpoint
# that cannot be written keeps the previous one and LATEST.
LT=$1
source "$(dirname "$0")/lib.sh"
COMPARE="/usr/bin/python3 $(dirname "$0")/../../scripts/compare_checkpoints.py"
NET=(--model.voxel_size 1.6 --model.point_channels 8,16 --model.bev_channels 8,16,16
     --log.every 1 --checkpoint.every 2 --checkpoint.keep 3)
MODEL=("${NET[@]}" --model.head_channels 8 --train.steps 10)
# The same with another step count (for continuing a finished run).
MODEL12=("${NET[@]}" --model.head_channels 8 --train.steps 12)
"$LT" synth --frames 24 --seed 1 --out "$WORK/train" >/dev/null
LAST=checkpoints/ckpt-00000010.h5

launch() {  # ranks run_dir [options...]: 1 rank runs without mpirun, as on a laptop
  local ranks=$1 dir=$2
  shift 2
  if [ "$ranks" -eq 1 ]; then
    "$LT" train "${MODEL[@]}" --data "$WORK/train" --run-dir "$dir" "$@"
  else
    "$MPIEXEC" -np "$ranks" "$LT" train "${MODEL[@]}" --data "$WORK/train" --run-dir "$dir" "$@"
  fi
}
# The training processes of a run (its ranks; not mpirun).
ranks_of() { pgrep -f "^$LT train .*--run-dir $1( |$)" || true; }
steps_done() {
  local n
  n=$(grep -c '"loss"' "$1/metrics.jsonl" 2>/dev/null)
  echo "${n:-0}"
}
wait_steps() {  # run_dir n: until n steps are in metrics.jsonl
  for _ in $(seq 1 600); do [ "$(steps_done "$1")" -ge "$2" ] && return 0; sleep 0.05; done
  return 1
}
# Losses by step, as written (17 significant digits), after step $2.
losses_after() { /usr/bin/python3 -c "
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    if 'loss' in r and r['step'] > int(sys.argv[2]): print(r['step'], repr(r['loss']))" "$1" "$2"; }

for ranks in 1 2; do
  launch $ranks "$WORK/ref$ranks" >/dev/null
  kill_at=$((3 + RANDOM % 6))
  launch $ranks "$WORK/killed$ranks" >/dev/null 2>&1 &
  job=$!
  wait_steps "$WORK/killed$ranks" $kill_at || fail "$ranks rank(s): never reached step $kill_at"
  kill -KILL $(ranks_of "$WORK/killed$ranks") 2>/dev/null || true
  wait $job 2>/dev/null || true
  resumed_at=$(ls "$WORK/killed$ranks/checkpoints" | grep -o 'ckpt-[0-9]*.h5$' | sort | tail -1)
  launch $ranks "$WORK/killed$ranks" --resume auto >"$WORK/resume$ranks.log" 2>&1 ||
    fail "$ranks rank(s): resume failed: $(cat "$WORK/resume$ranks.log")"
  grep -q "resumed from .*ckpt-" "$WORK/resume$ranks.log" && pass "$ranks rank(s): killed at step ~$kill_at, $(grep -o 'resumed from .*' "$WORK/resume$ranks.log")" ||
    fail "$ranks rank(s): did not resume: $(cat "$WORK/resume$ranks.log")"
  out=$($COMPARE "$WORK/ref$ranks/$LAST" "$WORK/killed$ranks/$LAST" --rtol 0 --groups model buffers optimizer state) &&
    pass "$ranks rank(s): killed + resumed = uninterrupted, bit for bit: $out" || fail "$ranks rank(s) differ: $out"
  for group in model optimizer buffers; do
    h5diff "$WORK/ref$ranks/$LAST" "$WORK/killed$ranks/$LAST" "/$group" "/$group" >/dev/null &&
      pass "$ranks rank(s): h5diff /$group: no difference" || fail "$ranks rank(s): h5diff /$group differs"
  done
  at=$(grep -o '"at_step":[0-9]*' "$WORK/killed$ranks/metrics.jsonl" | tail -1 | cut -d: -f2)
  if [ "$(losses_after "$WORK/ref$ranks/metrics.jsonl" "$at")" = "$(losses_after "$WORK/killed$ranks/metrics.jsonl" "$at")" ] &&
    [ "$(losses_after "$WORK/killed$ranks/metrics.jsonl" 0 | wc -l)" -eq 10 ]; then
    pass "$ranks rank(s): losses after step $at equal the uninterrupted run's; metrics.jsonl has each step once"
  else
    fail "$ranks rank(s): losses differ after step $at"
  fi
done

# Graceful preemption: SIGUSR1 to the ranks (as Slurm's --signal does) → a checkpoint at the end of that
# step, exit 75, and a resume that ends bit-identical.
launch 2 "$WORK/pre" >"$WORK/pre.log" 2>&1 &
job=$!
wait_steps "$WORK/pre" 4
kill -USR1 $(ranks_of "$WORK/pre")
rc=0
wait $job || rc=$?
stopped=$(grep -o 'stopping after step [0-9]*' "$WORK/pre.log" | grep -o '[0-9]*$' || true)
[ "$rc" -eq 75 ] && [ -n "$stopped" ] && [ -f "$WORK/pre/checkpoints/ckpt-$(printf %08d "$stopped").h5" ] &&
  [ "$(cat "$WORK/pre/checkpoints/LATEST")" = "ckpt-$(printf %08d "$stopped").h5" ] &&
  pass "SIGUSR1: checkpoint at step $stopped, LATEST names it, exit 75" || fail "SIGUSR1: exit $rc, $(cat "$WORK/pre.log")"
cp -r "$WORK/pre" "$WORK/pre_elastic"
launch 2 "$WORK/pre" >/dev/null && out=$($COMPARE "$WORK/ref2/$LAST" "$WORK/pre/$LAST" --rtol 0 --groups model buffers optimizer state) &&
  pass "preempted + resumed = uninterrupted: $out" || fail "after SIGUSR1: $out"
# A run that is complete says so and exits 0 (a requeued job that has nothing left to do).
launch 2 "$WORK/pre" >"$WORK/done.log" && grep -q "is complete: step 10 of 10" "$WORK/done.log" &&
  pass "a complete run resumes to nothing" || fail "complete run: $(cat "$WORK/done.log")"
# The time budget: train.max_time stops the run the same way.
launch 1 "$WORK/budget" --train.max_time 0.001 >"$WORK/budget.log" 2>&1 && rc=0 || rc=$?
[ "$rc" -eq 75 ] && grep -q "stopping after step 1 (train.max_time)" "$WORK/budget.log" &&
  pass "train.max_time: checkpoint after step 1, exit 75" || fail "max_time: exit $rc $(cat "$WORK/budget.log")"

# Elastic: checkpointed on 2 ranks, finished on 1 (and from 1 to 2); the data position counts frames.
launch 1 "$WORK/pre_elastic" >"$WORK/elastic.log" 2>&1 && grep -q "^step 10/10" "$WORK/elastic.log" &&
  pass "2 ranks → 1 rank: $(grep -o 'resumed from .*' "$WORK/elastic.log" | sed 's|.*/||')" ||
  fail "2 → 1: $(cat "$WORK/elastic.log")"
/usr/bin/python3 - "$WORK/pre_elastic/metrics.jsonl" <<'PY' && pass "its loss curve continues (no jump at the restart)" || fail "loss jumps at the elastic restart"
import json, sys
steps = [json.loads(l) for l in open(sys.argv[1])]
losses = [r["loss"] for r in steps if "loss" in r]
assert len(losses) == 10, losses
jumps = [abs(b - a) / a for a, b in zip(losses, losses[1:])]
assert max(jumps) < 0.5, jumps
PY
cp -r "$WORK/budget" "$WORK/budget2"
launch 2 "$WORK/budget2" >"$WORK/elastic2.log" 2>&1 && grep -q "^step 10/10" "$WORK/elastic2.log" &&
  pass "1 rank → 2 ranks" || fail "1 → 2: $(cat "$WORK/elastic2.log")"

# Damaged checkpoints: the newest truncated, then bit-flipped; a .tmp left by a killed writer.
check_fallback() {  # name damage-command
  local name=$1
  shift
  rm -rf "$WORK/dmg" && cp -r "$WORK/ref1" "$WORK/dmg"
  "$@" "$WORK/dmg/checkpoints/ckpt-00000010.h5"
  "$LT" train "${MODEL12[@]}" --data "$WORK/train" --run-dir "$WORK/dmg" >"$WORK/dmg.log" 2>"$WORK/dmg.err" &&
    grep -q "ckpt-00000010.h5.*damaged, skipped" "$WORK/dmg.err" && grep -q "resumed from .*ckpt-00000008.h5 at step 8" "$WORK/dmg.log" &&
    pass "$name newest checkpoint: said so ($(grep -o 'ckpt-00000010.h5.*' "$WORK/dmg.err" | cut -c1-90)), resumed from step 8" ||
    fail "$name: $(cat "$WORK/dmg.err" "$WORK/dmg.log")"
}
truncate_half() { truncate -s $(($(stat -c %s "$1") / 2)) "$1"; }
check_fallback "truncated" truncate_half
check_fallback "bit-flipped" flip_middle_byte
rm -rf "$WORK/tmpc" && cp -r "$WORK/ref1" "$WORK/tmpc"
head -c 5000 /dev/urandom >"$WORK/tmpc/checkpoints/ckpt-00000012.h5.tmp"
"$LT" train "${MODEL12[@]}" --data "$WORK/train" --run-dir "$WORK/tmpc" >"$WORK/tmpc.log" 2>"$WORK/tmpc.err" &&
  grep -q "ckpt-00000012.h5.tmp: half-written" "$WORK/tmpc.err" && [ ! -e "$WORK/tmpc/checkpoints/ckpt-00000012.h5.tmp" ] &&
  grep -q "resumed from .*ckpt-00000010.h5" "$WORK/tmpc.log" && pass "a killed writer's .tmp is ignored and removed" ||
  fail ".tmp: $(cat "$WORK/tmpc.err" "$WORK/tmpc.log")"

# A checkpoint that cannot be written (the disk is full: its temporary file is /dev/full, where every
# write fails with ENOSPC): one line naming the file, the OS error and the last good checkpoint, exit 74,
# the previous checkpoint intact and still LATEST, no .tmp left; on 2 ranks the same, with no watchdog
# needed (the ranks agree on the outcome: none waits in a collective). tests/e2e/disk_full.sh does the
# same on a real full file system.
for ranks in 1 2; do
  rm -rf "$WORK/full$ranks" && cp -r "$WORK/ref$ranks" "$WORK/full$ranks"
  ln -s /dev/full "$WORK/full$ranks/checkpoints/ckpt-00000012.h5.tmp"
  rc=0
  launcher=("$LT")
  [ "$ranks" -eq 1 ] || launcher=("$MPIEXEC" -np "$ranks" "$LT")
  timeout 120 "${launcher[@]}" train "${MODEL12[@]}" --data "$WORK/train" --run-dir "$WORK/full$ranks" \
    --resume "$WORK/full$ranks/$LAST" --timeout 60 >"$WORK/full.log" 2>"$WORK/full.err" || rc=$?
  grep '^lidartrain' "$WORK/full.err" >"$WORK/full.ours" || true
  [ "$rc" -eq 74 ] && [ "$(wc -l <"$WORK/full.ours")" -eq 1 ] &&
    grep -qE "ckpt-00000012.h5.tmp: write failed: No space left on device; the last good checkpoint is .*ckpt-00000010.h5 \(LATEST\)" "$WORK/full.ours" &&
    [ "$(cat "$WORK/full$ranks/checkpoints/LATEST")" = "ckpt-00000010.h5" ] && [ -z "$(ls "$WORK/full$ranks/checkpoints" | grep tmp)" ] &&
    $COMPARE "$WORK/ref$ranks/$LAST" "$WORK/full$ranks/$LAST" --rtol 0 >/dev/null &&
    pass "full disk, $ranks rank(s): $(cat "$WORK/full.ours" | cut -c1-160); ckpt-10 intact and LATEST" ||
    fail "full disk, $ranks rank(s): exit $rc, $(cat "$WORK/full.err")"
done
rm -rf "$WORK/nodir" && mkdir -p "$WORK/nodir" && touch "$WORK/nodir/checkpoints"
expect_error "checkpoint directory blocked" "nodir/checkpoints: cannot create the checkpoint directory" \
  "$LT" train "${NET[@]}" --train.steps 2 --data "$WORK/train" --run-dir "$WORK/nodir"
expect_error "resume from a missing file" "nope.h5: no such checkpoint" \
  "$LT" train "${MODEL[@]}" --data "$WORK/train" --run-dir "$WORK/x" --resume "$WORK/nope.h5"
expect_error "resume with another model" "written by a different model: \[model\] head_channels = 8 in the checkpoint, head_channels = 16" \
  "$LT" train "${NET[@]}" --model.head_channels 16 --data "$WORK/train" --run-dir "$WORK/y" --resume "$WORK/ref1/$LAST"
finish
