# Shared helpers for the end-to-end tests: source it, with LT (the lidartrain binary) set.
set -euo pipefail
: "${MPIEXEC:=mpirun}"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1

# The tiny models of the emulated-GPU tests: the _small configs at 8 to 16 channels on 32 × 32 cells.
CONFIGS="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../configs" && pwd)"
TINY_SEMSEG=(--config "$CONFIGS/semseg_small.ini" --model.voxel_size 3.2 --model.point_channels 8,16
             --model.bev_channels 8,16,16 --model.head_channels 8)
TINY_BEVDET=(--config "$CONFIGS/bevdet_small.ini" --model.point_range 0,-10.24,-3,20.48,10.24,1
             --model.pfn_channels 8 --model.backbone_layers 1,1,1 --model.backbone_channels 8,8,8
             --model.upsample_channels 4 --model.head_channels 8)

WORK=$(mktemp -d /tmp/lidartrain_e2e.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
failures=0

fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
pass() { echo "ok: $*"; }

# expect_error NAME PATTERN CMD...: CMD exits 1 with exactly one stderr line matching PATTERN.
expect_error() {
  local name=$1 pattern=$2
  shift 2
  local rc=0
  "$@" >"$WORK/out" 2>"$WORK/err" || rc=$?
  # mpirun adds its own banner when a rank exits non-zero: count only lidartrain's lines.
  if [[ " $* " == *" $MPIEXEC "* ]]; then grep '^lidartrain' "$WORK/err" >"$WORK/err.ours" || true; mv "$WORK/err.ours" "$WORK/err"; fi
  local lines
  lines=$(wc -l <"$WORK/err")
  if [ "$rc" -ne 1 ]; then
    fail "$name: exit $rc, expected 1 (stderr: $(cat "$WORK/err"))"
  elif [ "$lines" -ne 1 ]; then
    fail "$name: $lines stderr lines, expected 1: $(cat "$WORK/err")"
  elif ! grep -qE -- "$pattern" "$WORK/err"; then
    fail "$name: stderr does not match '$pattern': $(cat "$WORK/err")"
  else
    pass "$name: $(cat "$WORK/err")"
  fi
}

# expect_rank_errors NAME PATTERN CMD...: an mpirun CMD exits 1, and every rank that met the problem
# printed one line matching PATTERN, prefixed with its rank (at least one line; no other lines).
expect_rank_errors() {
  local name=$1 pattern=$2
  shift 2
  local rc=0
  "$@" >"$WORK/out" 2>"$WORK/err" || rc=$?
  grep '^lidartrain' "$WORK/err" >"$WORK/err.ours" || true
  local lines matching
  lines=$(wc -l <"$WORK/err.ours")
  matching=$(grep -cE -- "\[rank [0-9]+\] .*$pattern" "$WORK/err.ours" || true)
  if [ "$rc" -ne 1 ]; then
    fail "$name: exit $rc, expected 1 (stderr: $(cat "$WORK/err"))"
  elif [ "$lines" -lt 1 ] || [ "$matching" -ne "$lines" ]; then
    fail "$name: expected one '[rank N] ...$pattern' line per affected rank: $(cat "$WORK/err.ours")"
  else
    pass "$name: $(tr '\n' ' ' <"$WORK/err.ours")"
  fi
}

# write_tiny_model_ini FILE: the [model] section of a tiny semseg (trains in well under a second a step).
write_tiny_model_ini() {
  cat >"$1" <<'INI'
[model]
voxel_size = 1.6
point_channels = 8,16
bev_channels = 8,16,16
head_channels = 8
INI
}

# flip_middle_byte FILE: flips one bit of the byte in the middle of FILE (inside a shard's point chunks).
flip_middle_byte() {
  python3 - "$1" <<'PY'
import sys
with open(sys.argv[1], 'r+b') as f:
    f.seek(0, 2); size = f.tell()
    f.seek(size // 2); b = f.read(1); f.seek(size // 2); f.write(bytes([b[0] ^ 0x40]))
PY
}

# json_get FILE EXPR: evaluates a Python expression over the parsed JSON `j`.
json_get() { python3 -c "import json,sys; j=json.load(open(sys.argv[1])); print($2)" "$1"; }

finish() {
  if [ "$failures" -ne 0 ]; then
    echo "$failures check(s) failed" >&2
    exit 1
  fi
  echo "all checks passed"
}
