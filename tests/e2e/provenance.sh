#!/usr/bin/env bash
# Reproducibility metadata (issue 14): every checkpoint records the code, the build, the libraries, the
# command line, the ranks' hosts and the dataset's identity; inspect prints them; a resume on another
# dataset warns naming both, and the same frames copied elsewhere are the same dataset.
LT=$1
DATA=$2
source "$(dirname "$0")/lib.sh"

CFG="$(dirname "$0")/../../configs/semseg_small.ini"
TINY=(--model.voxel_size 3.2 --model.point_channels 8,8 --model.bev_channels 8,8,8 --model.head_channels 8
  --train.batch_size 1)
"$LT" synth --frames 4 --seed 1 --out "$WORK/a" >/dev/null
"$LT" synth --frames 4 --seed 2 --out "$WORK/b" >/dev/null
cp -r "$WORK/a" "$WORK/a_copy"
"$MPIEXEC" -np 2 --oversubscribe "$LT" train --config "$CFG" "${TINY[@]}" --data "$WORK/a" --train.steps 2 \
  --run-dir "$WORK/run" >"$WORK/train.log" 2>&1 || fail "train: $(tail -3 "$WORK/train.log")"
"$LT" inspect "$WORK/run/checkpoints/ckpt-00000002.h5" --json "$WORK/inspect.json" >"$WORK/inspect.txt" ||
  fail "inspect: $(cat "$WORK/inspect.txt")"
grep -q "^code git [0-9a-f]\{12\}" "$WORK/inspect.txt" && grep -q "dataset [0-9a-f]\{16\} ($WORK/a)" "$WORK/inspect.txt" &&
  pass "inspect names the code and the dataset: $(grep '^code' "$WORK/inspect.txt")" ||
  fail "inspect: $(cat "$WORK/inspect.txt")"
/usr/bin/python3 - "$WORK/inspect.json" "$WORK/a" <<'PY' && pass "the provenance is whole" || fail "provenance: $(cat "$WORK/inspect.json")"
import json, sys
s = json.load(open(sys.argv[1]))
p = s['provenance']
assert p['git_sha'] == s['git_sha'] and p['git_diff'] == s['git_diff']
assert ' train --config ' in p['command_line'] and '--train.steps 2' in p['command_line'], p['command_line']
assert p['world_size'] == 2 and len(p['hosts']) == 1, p
for lib in ('open_mpi', 'hdf5', 'eigen', 'boost', 'cuda', 'cudnn', 'nccl'):
    assert p['libraries'][lib], lib
assert p['libraries']['open_mpi'].startswith('Open MPI') and p['libraries']['hdf5'].count('.') == 2
assert p['compiler'] and p['build_type'] is not None
assert p['dataset']['path'] == sys.argv[2] and p['dataset']['id'] == s['dataset_id'] and len(s['dataset_id']) == 16
PY
# Resumed on another dataset: a warning naming both identities; on a copy of the same frames: none.
"$LT" train --config "$CFG" "${TINY[@]}" --data "$WORK/b" --train.steps 3 --run-dir "$WORK/run" \
  >"$WORK/resume_b.log" 2>"$WORK/resume_b.err" || fail "resume on b: $(cat "$WORK/resume_b.err")"
grep -q "warning: .*ckpt-00000002.h5: trained on dataset [0-9a-f]\{16\} ($WORK/a); this dataset is [0-9a-f]\{16\} ($WORK/b)" \
  "$WORK/resume_b.err" && pass "another dataset: $(grep 'trained on' "$WORK/resume_b.err")" ||
  fail "no dataset warning: $(cat "$WORK/resume_b.err")"
rm -rf "$WORK/run2" && cp -r "$WORK/run" "$WORK/run2" && rm "$WORK/run2/checkpoints/ckpt-00000003.h5" &&
  echo ckpt-00000002.h5 >"$WORK/run2/checkpoints/LATEST"
"$LT" train --config "$CFG" "${TINY[@]}" --data "$WORK/a_copy" --train.steps 3 --run-dir "$WORK/run2" \
  >"$WORK/resume_copy.log" 2>"$WORK/resume_copy.err" || fail "resume on the copy: $(cat "$WORK/resume_copy.err")"
grep -q "trained on dataset" "$WORK/resume_copy.err" && fail "a copy warned: $(cat "$WORK/resume_copy.err")" ||
  pass "a copy of the same frames is the same dataset"
# Written by other code (its commit edited in): resume and eval say so.
cp "$WORK/run/checkpoints/ckpt-00000002.h5" "$WORK/other.h5"
/usr/bin/python3 -c "import h5py, numpy, sys; f = h5py.File(sys.argv[1], 'r+'); f.attrs['git_sha'] = numpy.bytes_('0123456789ab'); f.close()" "$WORK/other.h5"
"$LT" eval --checkpoint "$WORK/other.h5" --data "$WORK/a" >/dev/null 2>"$WORK/eval.err" || fail "eval: $(cat "$WORK/eval.err")"
grep -q "warning: .*other.h5: written by git 0123456789ab.*; this binary is git [0-9a-f]\{12\}.*: the model code may differ" \
  "$WORK/eval.err" && pass "eval of another commit's checkpoint: $(cat "$WORK/eval.err")" || fail "eval: $(cat "$WORK/eval.err")"
"$LT" train --config "$CFG" "${TINY[@]}" --data "$WORK/a" --train.steps 3 --resume "$WORK/other.h5" \
  --run-dir "$WORK/run3" >/dev/null 2>"$WORK/resume_other.err" || fail "resume: $(cat "$WORK/resume_other.err")"
grep -q "written by git 0123456789ab" "$WORK/resume_other.err" && pass "a resume says so too" ||
  fail "resume: $(cat "$WORK/resume_other.err")"
finish
