#!/usr/bin/env bash
# train's TensorBoard event file (RUN_DIR/events.out.tfevents.*.lidartrain, rank 0), read back here by the
# format's rules with a reader of this script's own (CRC-32C and the protobuf fields in Python, no
# TensorFlow): every record's CRCs, the curves of metrics.jsonl step by step, the validation metrics at the
# end; a resumed run goes on in the same file without repeated steps; another program's event file in the
# run directory is left as it was.
LT=$1
source "$(dirname "$0")/lib.sh"

CFG="$(dirname "$0")/../../configs/semseg_small.ini"
TINY=(--model.voxel_size 3.2 --model.point_channels 8,16 --model.bev_channels 8,16,16 --model.head_channels 8)
"$LT" synth --frames 4 --seed 1 --out "$WORK/train" >/dev/null
"$LT" synth --frames 2 --seed 2 --out "$WORK/val" >/dev/null
run_train() {  # run_train STEPS [options…]
  local steps=$1
  shift
  "$LT" train --config "$CFG" "${TINY[@]}" --data "$WORK/train" --data.val "$WORK/val" --train.steps "$steps" \
    --train.batch_size 1 --log.every 1 --checkpoint.every 2 --checkpoint.keep 5 --run-dir "$WORK/run" "$@" \
    >"$WORK/train.log" 2>&1 || fail "train: $(tail -3 "$WORK/train.log")"
}

# TFRecord framing and the Event fields by hand: prints "tag step value" per scalar, "version V" first;
# exits 1 on any bad length, CRC or field.
cat >"$WORK/read_events.py" <<'PY'
import struct, sys
def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFF
def masked(data):
    c = crc32c(data)
    return (((c >> 15) | (c << 17)) + 0xa282ead8) & 0xFFFFFFFF
def varint(b, i):
    v = s = 0
    while True:
        x = b[i]; i += 1; v |= (x & 0x7F) << s; s += 7
        if not x & 0x80: return v, i
def fields(b):
    i = 0
    while i < len(b):
        key, i = varint(b, i); f, t = key >> 3, key & 7
        if t == 0: v, i = varint(b, i)
        elif t == 1: v = b[i:i + 8]; i += 8
        elif t == 5: v = b[i:i + 4]; i += 4
        elif t == 2: n, i = varint(b, i); v = b[i:i + n]; i += n
        else: sys.exit('wire type %d' % t)
        yield f, t, v
data = open(sys.argv[1], 'rb').read()
i = 0
while i < len(data):
    header = data[i:i + 8]
    (n,), (hcrc,) = struct.unpack('<Q', header), struct.unpack('<I', data[i + 8:i + 12])
    if hcrc != masked(header): sys.exit('length CRC at %d' % i)
    body = data[i + 12:i + 12 + n]
    (dcrc,) = struct.unpack('<I', data[i + 12 + n:i + 16 + n])
    if len(body) != n or dcrc != masked(body): sys.exit('data CRC at %d' % i)
    i += 16 + n
    step = 0
    scalars = []
    for f, t, v in fields(body):
        if f == 2: step = v
        if f == 3: print('version', v.decode())
        if f == 5:
            for _, _, value in fields(v):
                tag, x = None, None
                for vf, _, vv in fields(value):
                    if vf == 1: tag = vv.decode()
                    if vf == 2: (x,) = struct.unpack('<f', vv)
                scalars.append((tag, x))
    for tag, x in scalars: print(tag, step, repr(x))
PY
events_of() { ls "$WORK"/run/events.out.tfevents.*.lidartrain; }

mkdir -p "$WORK/run"
printf 'another program\0s events' >"$WORK/run/events.out.tfevents.1500000000.elsewhere"
cp "$WORK/run/events.out.tfevents.1500000000.elsewhere" "$WORK/foreign"
run_train 4
[ "$(events_of | wc -l)" -eq 1 ] && python3 "$WORK/read_events.py" "$(events_of)" >"$WORK/events.txt" &&
  pass "one event file, every record's CRCs good: $(basename "$(events_of)")" || fail "event file: $(ls "$WORK/run")"
head -1 "$WORK/events.txt" | grep -qx "version brain.Event:2" && pass "it starts with the file version" ||
  fail "first event: $(head -1 "$WORK/events.txt")"
# The loss curve is metrics.jsonl's, step by step (as float32), and every curve has steps 1-4 once.
python3 - "$WORK/events.txt" "$WORK/run/metrics.jsonl" <<'PY' && pass "train/loss = metrics.jsonl's losses, 7 curves of steps 1-4" || fail "curves: $(cat "$WORK/events.txt")"
import json, struct, sys
rows = [l.split() for l in open(sys.argv[1]) if not l.startswith('version')]
curves = {}
for tag, step, value in rows: curves.setdefault(tag, []).append((int(step), float(value)))
want = {json.loads(l)['step']: json.loads(l)['loss'] for l in open(sys.argv[2]) if '"loss"' in l}
f32 = lambda x: struct.unpack('<f', struct.pack('<f', x))[0]
train = {t: c for t, c in curves.items() if t.startswith('train/')}
ok = sorted(train) == ['train/data_wait_s', 'train/grad_norm', 'train/imbalance', 'train/loss', 'train/lr',
                       'train/samples_per_s', 'train/skipped_steps']
ok = ok and all([s for s, _ in c] == [1, 2, 3, 4] for c in train.values())
ok = ok and [v for _, v in curves['train/loss']] == [f32(want[s]) for s in (1, 2, 3, 4)]
sys.exit(0 if ok else 1)
PY
miou=$(python3 -c "import json,sys; print([json.loads(l)['miou'] for l in open(sys.argv[1]) if '\"eval\"' in l][-1])" "$WORK/run/metrics.jsonl")
grep -q "^val/miou 4 " "$WORK/events.txt" &&
  python3 -c "import sys; sys.exit(0 if abs(float(sys.argv[1]) - float(sys.argv[2])) <= 1e-6 * (1 + abs(float(sys.argv[2]))) else 1)" \
    "$(grep '^val/miou 4 ' "$WORK/events.txt" | cut -d' ' -f3)" "$miou" &&
  pass "validation at the end: $(grep '^val/' "$WORK/events.txt" | tr '\n' ' ')" || fail "val: $(grep '^val' "$WORK/events.txt")"

# A run stopped after step 4 whose last checkpoint is step 2's: resumed, steps 3 and 4 are logged again,
# replacing the old ones, and the run goes on to step 6 in the same file.
rm "$WORK/run/checkpoints/ckpt-00000004.h5"
echo "ckpt-00000002.h5" >"$WORK/run/checkpoints/LATEST"
first=$(events_of)
run_train 6 --resume auto
grep -q "resumed from .*ckpt-00000002.h5" "$WORK/train.log" || fail "resume: $(head -3 "$WORK/train.log")"
python3 "$WORK/read_events.py" "$(events_of)" >"$WORK/events2.txt" || fail "resumed file: $(cat "$WORK/events2.txt")"
[ "$(events_of)" = "$first" ] &&
  python3 - "$WORK/events2.txt" "$WORK/run/metrics.jsonl" <<'PY' && pass "resumed: the same file, steps 1-6 once each, steps 3-6 the resumed run's" || fail "resumed curves: $(grep train/loss "$WORK/events2.txt")"
import json, struct, sys
loss = [l.split() for l in open(sys.argv[1]) if l.startswith('train/loss ')]
want = {json.loads(l)['step']: json.loads(l)['loss'] for l in open(sys.argv[2]) if '"loss"' in l}
f32 = lambda x: struct.unpack('<f', struct.pack('<f', x))[0]
sys.exit(0 if [int(s) for _, s, _ in loss] == [1, 2, 3, 4, 5, 6] and
         [float(v) for _, _, v in loss] == [f32(want[s]) for s in range(1, 7)] else 1)
PY
cmp -s "$WORK/foreign" "$WORK/run/events.out.tfevents.1500000000.elsewhere" &&
  pass "another program's event file in the run directory: untouched" || fail "the foreign event file changed"
finish
