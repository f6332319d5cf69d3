#!/usr/bin/env bash
# Outputs that cannot be written (DESIGN.md §10), on real small file systems: a tmpfs mounted by this
# test (as root; skipped, exit 77, where mounting is not allowed). Disk full during the first and a later
# checkpoint, during synth and during infer --data, on 1 and 2 ranks: exit 74, one line naming the file,
# the OS error and what is still good, no .tmp left, no hang (each run has its own time limit), the
# previous checkpoint intact and LATEST, and a rerun once there is room that ends with the bits of an
# uninterrupted run. A read-only run directory and a read-only checkpoint directory: one line each. A
# write that never returns (a FIFO with no reader): the watchdog names the phase and the file.
LT=$1
source "$(dirname "$0")/lib.sh"
COMPARE="/usr/bin/python3 $(dirname "$0")/../../scripts/compare_checkpoints.py"

mounts=()
cleanup() {
  for m in "${mounts[@]}"; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
small_fs() {  # small_fs DIR SIZE: a tmpfs of SIZE at DIR
  mkdir -p "$1" && mount -t tmpfs -o "size=$2" tmpfs "$1" && mounts+=("$1")
}
# run_limited NAME CMD...: CMD with a time limit (a hang fails the test); its exit code in $rc, its own
# stderr lines (not mpirun's banner) in $WORK/ours.
run_limited() {
  local name=$1
  shift
  rc=0
  timeout 120 "$@" >"$WORK/out" 2>"$WORK/err" || rc=$?
  grep '^lidartrain' "$WORK/err" >"$WORK/ours" || true
  [ "$rc" -ne 124 ] || fail "$name: still running after 120 s (a hang): $(cat "$WORK/err")"
}
# expect_write_error NAME PATTERN: the last run_limited exited 74 with one line matching PATTERN.
expect_write_error() {
  if [ "$rc" -eq 74 ] && [ "$(wc -l <"$WORK/ours")" -eq 1 ] && grep -qE -- "$2" "$WORK/ours" &&
    ! grep -q "Segmentation\|backtrace\|Process received signal" "$WORK/err"; then
    pass "$1: exit 74: $(cut -c1-200 "$WORK/ours")"
  else
    fail "$1: exit $rc, expected 74 and one line matching '$2': $(cat "$WORK/err")"
  fi
}
no_tmp_left() {  # no_tmp_left NAME DIR
  local left
  left=$(find "$2" -name '*.tmp' 2>/dev/null)
  [ -z "$left" ] && pass "$1: no .tmp left" || fail "$1: left behind: $left"
}
launcher() {  # launcher RANKS: the command that starts lidartrain on RANKS ranks
  if [ "$1" -eq 1 ]; then echo "$LT"; else echo "$MPIEXEC -np $1 $LT"; fi
}

write_tiny_model_ini "$WORK/tiny.ini"
"$LT" synth --frames 12 --seed 1 --out "$WORK/train" >/dev/null
TRAIN=(train --config "$WORK/tiny.ini" --data "$WORK/train" --train.batch_size 1 --train.steps 12
       --checkpoint.every 4 --checkpoint.keep 3 --log.every 4 --timeout 60)

# The watchdog during a write: the checkpoint's temporary file is a FIFO nobody reads, so its open never
# returns. (No mount needed.)
rm -rf "$WORK/fifo" && mkdir -p "$WORK/fifo/checkpoints" && mkfifo "$WORK/fifo/checkpoints/ckpt-00000004.h5.tmp"
run_limited "hung write" "$LT" "${TRAIN[@]}" --run-dir "$WORK/fifo" --timeout 3 --resume none
[ "$rc" -eq 3 ] &&
  grep -qE "fatal: watchdog: writing checkpoint .*fifo/checkpoints/ckpt-00000004.h5 of step 4 has not finished .*the file system may be hung" "$WORK/err" &&
  pass "a write that hangs: the watchdog names the phase and the file: $(grep -o 'watchdog: .*' "$WORK/err" | cut -c1-150)" ||
  fail "hung write: exit $rc: $(cat "$WORK/err")"

if ! small_fs "$WORK/probe" 64k 2>"$WORK/mount.err"; then
  echo "skipped: cannot mount a tmpfs here (needs root): $(cat "$WORK/mount.err")"
  finish
  exit 77
fi

# Uninterrupted references on a disk with room.
for ranks in 1 2; do
  $(launcher $ranks) "${TRAIN[@]}" --run-dir "$WORK/ref$ranks" >/dev/null
done
ckpt_kb=$(($(stat -c %s "$WORK/ref1/checkpoints/ckpt-00000004.h5") / 1024))

# A checkpoint that does not fit: the first one (the file system holds half of one), or the third (it
# holds two and a half). Then room is made and the same command resumes: the same bits as the reference.
for ranks in 1 2; do
  for which in first later; do
    name="disk full at the $which checkpoint, $ranks rank(s)"
    fsdir="$WORK/fs-$ranks-$which"
    if [ "$which" = first ]; then
      small_fs "$fsdir" "$((ckpt_kb / 2))k"
      failing=ckpt-00000004.h5
      good="none written yet"
    else
      small_fs "$fsdir" "$((ckpt_kb * 5 / 2))k"
      failing=ckpt-00000012.h5
      good=".*/checkpoints/ckpt-00000008.h5 \(LATEST\)"
    fi
    run_limited "$name" $(launcher $ranks) "${TRAIN[@]}" --run-dir "$fsdir/run"
    expect_write_error "$name" "^lidartrain train: error: (\[rank 0\] )?$fsdir/run/checkpoints/$failing.tmp: write failed: No space left on device; the last good checkpoint is $good$"
    no_tmp_left "$name" "$fsdir"
    if [ "$which" = later ]; then
      [ "$(cat "$fsdir/run/checkpoints/LATEST")" = ckpt-00000008.h5 ] &&
        $COMPARE "$WORK/ref$ranks/checkpoints/ckpt-00000008.h5" "$fsdir/run/checkpoints/ckpt-00000008.h5" --rtol 0 >/dev/null &&
        pass "$name: LATEST still ckpt-00000008.h5, bit-identical to the reference's" ||
        fail "$name: LATEST or ckpt-00000008.h5 damaged"
    fi
    mount -o remount,size=16m "$fsdir"
    run_limited "$name, resumed" $(launcher $ranks) "${TRAIN[@]}" --run-dir "$fsdir/run" --resume auto
    [ "$rc" -eq 0 ] &&
      $COMPARE "$WORK/ref$ranks/checkpoints/ckpt-00000012.h5" "$fsdir/run/checkpoints/ckpt-00000012.h5" --rtol 0 \
        --groups model buffers optimizer state >/dev/null &&
      pass "$name: with room again, --resume auto ends bit-identical to the uninterrupted run" ||
      fail "$name: resume: exit $rc: $(cat "$WORK/err")"
  done
done

# synth into a file system without room for its shard: nothing of the dataset is left.
for ranks in 1 2; do
  name="synth on a full disk, $ranks rank(s)"
  fsdir="$WORK/synth-$ranks"
  small_fs "$fsdir" 1m
  run_limited "$name" $(launcher $ranks) synth --frames 8 --shards 2 --seed 1 --out "$fsdir/data"
  expect_write_error "$name" "shard-0000[01].h5.tmp: write failed: No space left on device; $fsdir/data was not written \(nothing of it is left\)$"
  [ -z "$(ls -A "$fsdir")" ] && pass "$name: nothing left in the file system" || fail "$name: left: $(ls -A "$fsdir")"
done

# infer --data into a file system that holds two frames' labels: the frames written stay whole, and a
# rerun once there is room makes the rest: the same files as an uninterrupted run (the per-rank
# predictions files the same datasets: a rerun reads the frames already there back into them).
"$LT" train --config "$WORK/tiny.ini" --data "$WORK/train" --train.steps 2 --run-dir "$WORK/model" >/dev/null
CKPT="$WORK/model/checkpoints/ckpt-00000002.h5"
for ranks in 1 2; do
  name="infer --data on a full disk, $ranks rank(s)"
  fsdir="$WORK/infer-$ranks"
  $(launcher $ranks) infer --checkpoint "$CKPT" --data "$WORK/train" --out "$WORK/infer-ref$ranks" >/dev/null
  small_fs "$fsdir" 1m
  run_limited "$name" $(launcher $ranks) infer --checkpoint "$CKPT" --data "$WORK/train" --out "$fsdir/out"
  expect_write_error "$name" "[0-9]+.label.tmp: write failed: No space left on device; the frames written so far are whole and kept"
  no_tmp_left "$name" "$fsdir"
  mount -o remount,size=64m "$fsdir"
  run_limited "$name, rerun" $(launcher $ranks) infer --checkpoint "$CKPT" --data "$WORK/train" --out "$fsdir/out"
  same_predictions=true
  for f in "$WORK/infer-ref$ranks"/predictions/*.h5; do
    h5diff "$f" "$fsdir/out/predictions/$(basename "$f")" >/dev/null || same_predictions=false
  done
  [ "$rc" -eq 0 ] && diff -r -x manifest.json -x predictions "$WORK/infer-ref$ranks" "$fsdir/out" >/dev/null &&
    $same_predictions && pass "$name: the rerun completes; every file equals an uninterrupted run's" ||
    fail "$name: rerun: exit $rc: $(diff -r -x manifest.json -q "$WORK/infer-ref$ranks" "$fsdir/out" | head -3) $(cat "$WORK/err")"
done

# A run directory on a read-only file system; a read-only checkpoint directory (a read-only bind mount).
small_fs "$WORK/ro" 1m && mount -o remount,ro "$WORK/ro"
run_limited "read-only run directory" "$LT" "${TRAIN[@]}" --run-dir "$WORK/ro/run"
expect_write_error "read-only run directory" "ro/run: creating the run directory failed: Read-only file system"
mkdir -p "$WORK/rock/checkpoints" && mount --bind "$WORK/rock/checkpoints" "$WORK/rock/checkpoints" &&
  mounts=("$WORK/rock/checkpoints" "${mounts[@]}") && mount -o remount,bind,ro "$WORK/rock/checkpoints"
run_limited "read-only checkpoint directory" "$LT" "${TRAIN[@]}" --run-dir "$WORK/rock"
expect_write_error "read-only checkpoint directory" \
  "rock/checkpoints/ckpt-00000004.h5.tmp: create failed: Read-only file system; the last good checkpoint is none written yet$"
finish
