#!/usr/bin/env bash
# infer --data DIR --out DIR (issue 14, first part): every frame of a dataset through a checkpoint, split
# over ranks; 2 ranks write exactly the files of 1; a killed or partial run, rerun, skips what is done and
# ends with the same files; outputs of another checkpoint are refused without --force; bad input is one
# line, exit 1.
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

same() {  # same A B: the same files, byte for byte (the manifests differ in timings)
  diff -r -x manifest.json "$1" "$2" >/dev/null
}
for model in s b; do
  ckpt=$S && [ $model = b ] && ckpt=$B
  "$LT" infer --checkpoint "$ckpt" --data "$WORK/data" --out "$WORK/$model.np1" >"$WORK/$model.np1.log" ||
    fail "np1: $(cat "$WORK/$model.np1.log")"
  "$MPIEXEC" -np 2 --oversubscribe "$LT" infer --checkpoint "$ckpt" --data "$WORK/data" --out "$WORK/$model.np2" \
    >"$WORK/$model.np2.log" 2>&1 || fail "np2: $(cat "$WORK/$model.np2.log")"
  same "$WORK/$model.np1" "$WORK/$model.np2" && pass "$model: 2 ranks write exactly the files of 1" ||
    fail "$model: np1 and np2 differ: $(diff -rq -x manifest.json "$WORK/$model.np1" "$WORK/$model.np2" | head -3)"
done
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
"$LT" infer --checkpoint "$S" --data "$WORK/data" --out "$WORK/partial" >"$WORK/partial.log" || fail "rerun: $(cat "$WORK/partial.log")"
grep -q "12 made, 12 already there" "$WORK/partial.log" && pass "a rerun makes only what is missing: $(tail -1 "$WORK/partial.log")" ||
  fail "rerun: $(tail -1 "$WORK/partial.log")"
same "$WORK/partial" "$WORK/s.np1" && pass "and ends with the same files" || fail "rerun differs"
"$MPIEXEC" -np 2 --oversubscribe "$LT" infer --checkpoint "$S" --data "$WORK/data" --out "$WORK/killed" >/dev/null 2>&1 &
sleep 0.5
pkill -KILL -f "infer --checkpoint $S --data $WORK/data --out $WORK/killed" || true
wait || true
"$LT" infer --checkpoint "$S" --data "$WORK/data" --out "$WORK/killed" >"$WORK/killed.log" || fail "after kill: $(cat "$WORK/killed.log")"
rm -f "$WORK"/killed/sequences/*/predictions/*.tmp
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
expect_error "a dataset that is not there" "/nonexistent: no such dataset" \
  "$LT" infer --checkpoint "$S" --data /nonexistent --out "$WORK/y"
finish
