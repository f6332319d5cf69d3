#!/usr/bin/env bash
# Every bad input of the foundation issue: one error line naming the file (and frame), exit 1, and
# no output directory (nor its staging directory) left behind.
LT=$1
DATA=$2
source "$(dirname "$0")/lib.sh"

no_output() {
  if [ -e "$1" ] || [ -e "$1.partial" ]; then fail "$1 (or its .partial) was left behind"; else pass "nothing left at $1"; fi
}

cp -r "$DATA/kitti" "$WORK/kitti" && chmod -R u+w "$WORK/kitti"
cp -r "$DATA/semantickitti_tiny" "$WORK/sk" && chmod -R u+w "$WORK/sk"

# A truncated .bin, under mpirun: the rank that owns the frame reports it.
cp -r "$WORK/kitti" "$WORK/k_trunc"
truncate -s -5 "$WORK/k_trunc/training/velodyne/000002.bin"
expect_error "truncated .bin" "\[rank 1\] .*k_trunc/training/velodyne/000002.bin: .*truncated" \
  "$MPIEXEC" -np 2 "$LT" convert --format kitti --in "$WORK/k_trunc" --out "$WORK/out1" --shards 2
no_output "$WORK/out1"

cp -r "$WORK/sk" "$WORK/sk_len"
truncate -s -4 "$WORK/sk_len/labels/000000.label"
expect_error ".label length" "sk_len/labels/000000.label: 49 labels for the 50 points" \
  "$LT" convert --format semantickitti --in "$WORK/sk_len" --out "$WORK/out2"
no_output "$WORK/out2"

cp -r "$WORK/kitti" "$WORK/k_calib"
grep -v Tr_velo_to_cam "$DATA/kitti/training/calib/000001.txt" >"$WORK/k_calib/training/calib/000001.txt"
expect_error "calib without Tr_velo_to_cam" "k_calib/training/calib/000001.txt: no Tr_velo_to_cam" \
  "$LT" convert --format kitti --in "$WORK/k_calib" --out "$WORK/out3"
no_output "$WORK/out3"

cp -r "$WORK/kitti" "$WORK/k_nan"
python3 - "$WORK/k_nan/training/velodyne/000000.bin" <<'PY'
import struct, sys
with open(sys.argv[1], 'r+b') as f:
    f.seek(16 * 1234)
    f.write(struct.pack('<f', float('nan')))
PY
expect_error "NaN coordinate" "k_nan/training/velodyne/000000.bin: frame 000000: point 1234 has a non-finite value" \
  "$LT" convert --format kitti --in "$WORK/k_nan" --out "$WORK/out4"
no_output "$WORK/out4"

cp -r "$WORK/sk" "$WORK/sk_id"
python3 - "$WORK/sk_id/labels/000000.label" <<'PY'
import struct, sys
with open(sys.argv[1], 'r+b') as f:
    f.seek(4 * 10)
    f.write(struct.pack('<I', (3 << 16) | 123))
PY
expect_error "unknown raw label id" "sk_id/labels/000000.label: point 10: raw label id 123 is not in the learning map" \
  "$LT" convert --format semantickitti --in "$WORK/sk_id" --out "$WORK/out5"
no_output "$WORK/out5"

expect_error "missing input directory" "$WORK/nowhere: no such input directory" \
  "$LT" convert --format kitti --in "$WORK/nowhere" --out "$WORK/out6"
no_output "$WORK/out6"
expect_error "unknown format" "'waymo' is not one of" "$LT" convert --format waymo --in "$WORK/kitti" --out "$WORK/out7"

# Shards: truncated, corrupted, missing.
"$LT" synth --frames 40 --shards 2 --out "$WORK/ds" >/dev/null
cp -r "$WORK/ds" "$WORK/ds_trunc"
truncate -s 100000 "$WORK/ds_trunc/shard-00001.h5"
expect_error "truncated shard" "ds_trunc/shard-00001.h5" "$LT" inspect "$WORK/ds_trunc"
cp -r "$WORK/ds" "$WORK/ds_flip"
flip_middle_byte "$WORK/ds_flip/shard-00000.h5"
expect_rank_errors "corrupted shard" "ds_flip/shard-00000.h5: frame synth/seed1/[0-9]+: /(points|labels).*checksum" \
  "$MPIEXEC" -np 2 "$LT" inspect "$WORK/ds_flip"
expect_error "missing dataset" "$WORK/none: no such dataset" "$LT" inspect "$WORK/none"

# An existing output is not replaced without --force, and is left intact.
expect_error "existing output" "already exists" "$LT" synth --frames 2 --out "$WORK/ds"
[ "$(ls "$WORK/ds" | wc -l)" -eq 2 ] && pass "existing dataset intact" || fail "existing dataset changed"
finish
