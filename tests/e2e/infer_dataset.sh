#!/usr/bin/env bash
# infer --data DIR --out DIR (issue 14): every frame of a dataset through a checkpoint, split over ranks;
# 2 ranks write exactly the files of 1; eval --predictions gives exactly eval --checkpoint's numbers; a
# killed, stopped (SIGUSR1: exit 75) or partial run, rerun, skips what is done and ends with the same
# files; outputs of another checkpoint are refused without --force; bad input is one line, exit 1.
LT=$1
DATA=$2
source "$(dirname "$0")/lib.sh"

CFG="$(dirname "$0")/../../configs"
SEMSEG=(--model.voxel_size 3.2 --model.point_channels 8,8 --model.bev_channels 8,8,8 --model.head_channels 8
  --train.batch_size 1)
BEVDET=(--model.pillar_size 1.28 --model.pfn_channels 8 --model.backbone_layers 1,1,1 --model.backbone_channels 8,8,8
  --model.upsample_channels 8 --model.head_channels 8 --train.batch_size 1)
"$LT" synth --frames 4 --seed 1 --out "$WORK/train" >/dev/null
"$LT" synth --frames 24 --seed 5 --out "$WORK/data" >/dev/null
"$LT" train --config "$CFG/semseg_small.ini" "${SEMSEG[@]}" --data "$WORK/train" --train.steps 1 --run-dir "$WORK/s" >/dev/null
"$LT" train --config "$CFG/bevdet_small.ini" "${BEVDET[@]}" --data "$WORK/train" --train.steps 1 --run-dir "$WORK/b" >/dev/null
S="$WORK/s/checkpoints/ckpt-00000001.h5"
B="$WORK/b/checkpoints/ckpt-00000001.h5"

same() {  # same A B: the same per-frame files, byte for byte (the manifests differ in timings, the
  # per-rank predictions files in their number)
  diff -r -x manifest.json -x predictions "$1" "$2" >/dev/null
}
metrics() {  # metrics JSON: the figures of an eval --json, without what names the source
  /usr/bin/python3 -c 'import json, sys
j = json.load(open(sys.argv[1]))
for k in ("checkpoint", "predictions", "checkpoint_identity", "data"): j.pop(k, None)
print(json.dumps(j, sort_keys=True))' "$1"
}
for model in s b; do
  ckpt=$S && [ $model = b ] && ckpt=$B
  "$LT" infer --checkpoint "$ckpt" --data "$WORK/data" --out "$WORK/$model.np1" >"$WORK/$model.np1.log" ||
    fail "np1: $(cat "$WORK/$model.np1.log")"
  "$MPIEXEC" -np 2 --oversubscribe "$LT" infer --checkpoint "$ckpt" --data "$WORK/data" --out "$WORK/$model.np2" \
    >"$WORK/$model.np2.log" 2>&1 || fail "np2: $(cat "$WORK/$model.np2.log")"
  same "$WORK/$model.np1" "$WORK/$model.np2" && pass "$model: 2 ranks write exactly the files of 1" ||
    fail "$model: np1 and np2 differ: $(diff -rq -x manifest.json "$WORK/$model.np1" "$WORK/$model.np2" | head -3)"
  # The stored predictions score exactly as the checkpoint does, whichever rank count made them (bevdet
  # at a loose IoU, where a 1-step model's AP is not 0).
  iou=() && [ $model = b ] && iou=(--iou 0.01)
  "$LT" eval --checkpoint "$ckpt" --data "$WORK/data" "${iou[@]}" --json "$WORK/$model.ckpt.json" >/dev/null
  "$LT" eval --predictions "$WORK/$model.np1" --data "$WORK/data" "${iou[@]}" --json "$WORK/$model.p1.json" >/dev/null
  "$MPIEXEC" -np 2 --oversubscribe "$LT" eval --checkpoint "$ckpt" --data "$WORK/data" "${iou[@]}" --json "$WORK/$model.ckpt2.json" >/dev/null
  "$MPIEXEC" -np 2 --oversubscribe "$LT" eval --predictions "$WORK/$model.np2" --data "$WORK/data" "${iou[@]}" \
    --json "$WORK/$model.p2.json" >/dev/null
  [ "$(metrics "$WORK/$model.ckpt.json")" = "$(metrics "$WORK/$model.p1.json")" ] &&
    [ "$(metrics "$WORK/$model.ckpt2.json")" = "$(metrics "$WORK/$model.p2.json")" ] &&
    [ "$(metrics "$WORK/$model.ckpt.json")" = "$(metrics "$WORK/$model.ckpt2.json")" ] &&
    pass "$model: eval --predictions gives exactly eval --checkpoint's numbers, on 1 and 2 ranks ($(metrics "$WORK/$model.p1.json" | cut -c1-60)…)" ||
    fail "$model: eval --predictions differs: $(metrics "$WORK/$model.ckpt.json" | head -c 200) vs $(metrics "$WORK/$model.p1.json" | head -c 200)"
done
[ "$(ls "$WORK/s.np2/predictions")" = "$(printf 'rank-00000-of-00002.h5\nrank-00001-of-00002.h5')" ] &&
  pass "one predictions file per rank" || fail "predictions files: $(ls "$WORK/s.np2/predictions")"
/usr/bin/python3 - "$WORK/b.np2/predictions" "$WORK/b.np1/boxes" <<'PY' && pass "h5py opens the predictions files: per-frame offsets, boxes as the text files' floats" || fail "predictions files through h5py"
import glob, h5py, os, sys
import numpy as np
seen = 0
for path in sorted(glob.glob(os.path.join(sys.argv[1], '*.h5'))):
    with h5py.File(path, 'r') as f:
        assert f.attrs['schema'] == b'lidartrain.predictions' and f.attrs['model'] == b'bevdet', dict(f.attrs)
        offsets, ids = f['box_offsets'][()], f['frame_ids'][()]
        for i, frame_id in enumerate(ids):
            rows = [l.split() for l in open(os.path.join(sys.argv[2], frame_id.decode() + '.txt')) if not l.startswith('#')]
            boxes = f['boxes'][offsets[i]:offsets[i + 1]]
            assert len(rows) == len(boxes), (frame_id, len(rows), len(boxes))
            for row, box, score in zip(rows, boxes, f['scores'][offsets[i]:offsets[i + 1]]):
                assert np.array_equal(np.float32([float(v) for v in row[1:8]]), box) and np.float32(row[8]) == score
            seen += 1
assert seen == 24, seen
PY
[ "$(find "$WORK/s.np1/sequences" -name '*.label' | wc -l)" -eq 24 ] && [ "$(find "$WORK/b.np1/boxes" -name '*.txt' | wc -l)" -eq 24 ] &&
  pass "one output per frame: SemanticKITTI sequences/<seq>/predictions/*.label, boxes/*.txt" ||
  fail "outputs: $(find "$WORK/s.np1" "$WORK/b.np1" -type f | head -5)"
/usr/bin/python3 - "$WORK/data" "$WORK/s.np1" "$WORK/s.np2/manifest.json" <<'PY' && pass "label files hold 4 bytes a point, raw SemanticKITTI ids; the manifest is whole" || fail "label sizes or manifest"
import glob, h5py, json, os, sys
data, out, manifest = sys.argv[1:4]
raw_ids = {0, 10, 11, 15, 18, 20, 30, 31, 32, 40, 44, 48, 49, 50, 51, 70, 71, 72, 80, 81}
import numpy as np
for shard in sorted(glob.glob(os.path.join(data, '*.h5'))):
    with h5py.File(shard, 'r') as f:
        offsets, ids = f['point_offsets'][()], f['frame_ids'][()]
        for i, frame_id in enumerate(ids):
            name = frame_id.decode().split('/')
            path = os.path.join(out, 'sequences', '_'.join(name[:-1]), 'predictions', name[-1] + '.label')
            labels = np.fromfile(path, dtype='<u4')
            assert labels.size == offsets[i + 1] - offsets[i], (path, labels.size)
            assert set(np.unique(labels)) <= raw_ids, path
m = json.load(open(manifest))
assert m['frames'] == 24 and m['done'] == 24 and m['skipped'] == 0 and len(m['ranks']) == 2, m
assert sum(r['frames'] for r in m['ranks']) == 24 and all(r['frames_per_s'] > 0 for r in m['ranks']), m
assert len(m['dataset_id']) == 16 and ' infer ' in m['command_line'] and m['model'] == 'semseg', m
assert m['provenance']['libraries']['hdf5'] and m['provenance']['world_size'] == 2 and m['provenance']['dataset']['id'] == m['dataset_id'], m
PY

# A partial run (half the files gone, a temporary file left by a kill) and a SIGKILLed one: rerun, same files.
cp -r "$WORK/s.np1" "$WORK/partial"
find "$WORK/partial/sequences" -name '*.label' | sort | awk 'NR % 2 == 0' | xargs rm
touch "$WORK/partial/sequences/synth_seed5/predictions/000003.label.tmp"
rm -r "$WORK/partial/predictions"
"$LT" infer --checkpoint "$S" --data "$WORK/data" --out "$WORK/partial" >"$WORK/partial.log" || fail "rerun: $(cat "$WORK/partial.log")"
grep -q "12 made, 12 already there" "$WORK/partial.log" && pass "a rerun makes only what is missing: $(tail -1 "$WORK/partial.log")" ||
  fail "rerun: $(tail -1 "$WORK/partial.log")"
same "$WORK/partial" "$WORK/s.np1" && pass "and ends with the same files" || fail "rerun differs"
"$LT" eval --predictions "$WORK/partial" --data "$WORK/data" --json "$WORK/partial.json" >/dev/null
[ "$(metrics "$WORK/partial.json")" = "$(metrics "$WORK/s.ckpt.json")" ] &&
  pass "the rerun's predictions file (half its frames read back from the .label files) scores the same" ||
  fail "rerun predictions score differently"
# A damaged output (not one of ours: ours are renamed into place whole) is made again, with a warning.
cp -r "$WORK/s.np1" "$WORK/damaged"
truncate -s 100 "$WORK/damaged/sequences/synth_seed5/predictions/000007.label"
"$LT" infer --checkpoint "$S" --data "$WORK/data" --out "$WORK/damaged" >"$WORK/damaged.log" 2>"$WORK/damaged.err" ||
  fail "damaged: $(cat "$WORK/damaged.err")"
grep -q "1 made, 23 already there" "$WORK/damaged.log" && grep -q "warning: .*000007.label: 25 labels for .* points: making frame" "$WORK/damaged.err" &&
  same "$WORK/damaged" "$WORK/s.np1" && pass "a damaged .label is made again: $(cat "$WORK/damaged.err")" ||
  fail "damaged: $(cat "$WORK/damaged.log" "$WORK/damaged.err")"
# SIGUSR1 (what Slurm sends before preemption): the frame in hand is finished, exit 75, and the rerun
# completes the same files.
"$LT" infer --checkpoint "$S" --data "$WORK/data" --out "$WORK/stopped" >"$WORK/stopped.log" 2>&1 &
pid=$!
for _ in $(seq 400); do
  [ -n "$(find "$WORK/stopped" -name '*.label' 2>/dev/null | head -1)" ] && break
  sleep 0.02
done
kill -USR1 $pid
rc=0
wait $pid || rc=$?
made=$(find "$WORK/stopped" -name '*.label' | wc -l)
[ $rc -eq 75 ] && [ "$made" -lt 24 ] && ! find "$WORK/stopped" -name '*.tmp' | grep -q . &&
  grep -q "stopping (SIGUSR1)" "$WORK/stopped.log" &&
  pass "SIGUSR1: exit 75 after $made of 24 frames, no temporary file, no predictions file: $(grep stopping "$WORK/stopped.log")" ||
  fail "SIGUSR1: exit $rc, $made frames: $(cat "$WORK/stopped.log")"
[ -z "$(ls "$WORK/stopped/predictions")" ] || fail "a stopped run left a predictions file"
"$LT" infer --checkpoint "$S" --data "$WORK/data" --out "$WORK/stopped" >"$WORK/stopped.log" || fail "after USR1: $(cat "$WORK/stopped.log")"
same "$WORK/stopped" "$WORK/s.np1" && grep -q "$((24 - made)) made, $made already there" "$WORK/stopped.log" &&
  pass "and the rerun finishes with the same files: $(tail -1 "$WORK/stopped.log" | grep -o '[0-9]* made, [0-9]* already there')" ||
  fail "after USR1: $(tail -1 "$WORK/stopped.log")"
"$MPIEXEC" -np 2 --oversubscribe "$LT" infer --checkpoint "$S" --data "$WORK/data" --out "$WORK/killed" >/dev/null 2>&1 &
sleep 0.5
pkill -KILL -f "infer --checkpoint $S --data $WORK/data --out $WORK/killed" || true
wait || true
"$LT" infer --checkpoint "$S" --data "$WORK/data" --out "$WORK/killed" >"$WORK/killed.log" || fail "after kill: $(cat "$WORK/killed.log")"
rm -f "$WORK"/killed/sequences/*/predictions/*.tmp
[ "$(ls "$WORK/killed/predictions")" = "rank-00000-of-00001.h5" ] &&
  pass "the rerun on 1 rank replaced the 2-rank run's predictions files" || fail "predictions: $(ls "$WORK/killed/predictions")"
same "$WORK/killed" "$WORK/s.np1" && pass "SIGKILLed and rerun: the same files ($(tail -1 "$WORK/killed.log" | grep -o '[0-9]* made, [0-9]* already there'))" ||
  fail "after kill: $(diff -rq -x manifest.json "$WORK/killed" "$WORK/s.np1" | head -3)"

# Bad input.
expect_error "another checkpoint's outputs" "holds the predictions of another checkpoint.*--force" \
  "$LT" infer --checkpoint "$B" --data "$WORK/data" --out "$WORK/s.np1"
"$LT" infer --checkpoint "$B" --data "$WORK/data" --out "$WORK/s.np1" --force >/dev/null &&
  pass "--force writes over them" || fail "--force"
mkdir -p "$WORK/busy" && touch "$WORK/busy/notes.txt"
expect_error "a directory of something else" "busy: not empty and not an inference output" \
  "$LT" infer --checkpoint "$S" --data "$WORK/data" --out "$WORK/busy"
touch "$WORK/afile"
expect_error "an output that cannot be a directory" "cannot create the output directory" \
  "$LT" infer --checkpoint "$S" --data "$WORK/data" --out "$WORK/afile/out"
expect_error "--data and --input" "give one of them" \
  "$LT" infer --checkpoint "$S" --data "$WORK/data" --input x.bin --out "$WORK/x"
expect_error "--data without --out" "--out DIR is needed" "$LT" infer --checkpoint "$S" --data "$WORK/data"
"$LT" synth --frames 2 --seed 5 --out "$WORK/lidar_only" --no-camera >/dev/null
expect_error "label_2 from a dataset without calibrations" "lidar_only: no calibrations in this dataset.*--boxes label_2" \
  "$LT" infer --checkpoint "$B" --data "$WORK/lidar_only" --out "$WORK/l2" --boxes label_2
[ ! -e "$WORK/l2" ] && pass "and nothing written" || fail "label_2 refused but $WORK/l2 exists"
expect_error "--boxes for semseg" "--boxes: only for a bevdet checkpoint" \
  "$LT" infer --checkpoint "$S" --data "$WORK/data" --out "$WORK/l2" --boxes lidar
expect_error "--boxes with --input" "--boxes is for --data" \
  "$LT" infer --checkpoint "$B" --input x.bin --boxes lidar
cp -r "$WORK/s.np2" "$WORK/unfinished" && rm "$WORK/unfinished/predictions/rank-00001-of-00002.h5"
expect_error "eval of an unfinished output" "no prediction for frame .*did infer --data finish" \
  "$LT" eval --predictions "$WORK/unfinished" --data "$WORK/data"
expect_error "eval of predictions of another dataset" "predictions of dataset [0-9a-f]{16}, and .* is dataset [0-9a-f]{16}" \
  "$LT" eval --predictions "$WORK/s.np1" --data "$WORK/train"
expect_error "eval with both" "--checkpoint CKPT or --predictions DIR: give one of them" \
  "$LT" eval --predictions "$WORK/s.np1" --checkpoint "$S" --data "$WORK/data"
expect_error "a dataset that is not there" "/nonexistent: no such dataset" \
  "$LT" infer --checkpoint "$S" --data /nonexistent --out "$WORK/y"
finish
