#!/usr/bin/env bash
# The scaling study driver and its table/plot, on a tiny model: strong and weak points over 1 and 2
# ranks, each run's figures in scaling.md, the plot written.
LT=$(realpath "$1")
source "$(dirname "$0")/lib.sh"
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
write_tiny_model_ini "$WORK/tiny.ini"
"$LT" synth --frames 16 --seed 1 --out "$WORK/data" >/dev/null
LIDARTRAIN="$LT" SCALING_CONFIG="$WORK/tiny.ini" SCALING_STEPS=5 SCALING_RANKS="1 2" SCALING_DATA="$WORK/data" \
  bash "$ROOT/scripts/scaling_study.sh" "$WORK/study" >"$WORK/study.log" 2>&1 ||
  fail "scaling_study.sh: $(tail -5 "$WORK/study.log")"
[ "$(grep -c '^| strong\|^| weak' "$WORK/study/scaling.md")" -eq 4 ] && pass "scaling.md: 4 runs" ||
  fail "scaling.md: $(cat "$WORK/study/scaling.md")"
grep -qE '^\| weak \| 2 × 1 \(2\) \| 2 \| [0-9.]+ \| [0-9.]+ \| [0-9.]+ \| .* \| [0-9.]+ \([0-9.]+\) \| [0-9.]+ \|' \
  "$WORK/study/scaling.md" && pass "2-rank row has all-reduce time and bus bandwidth" ||
  fail "2-rank row: $(cat "$WORK/study/scaling.md")"
[ "$(head -c 4 "$WORK/study/scaling.png" | tail -c 3)" = "PNG" ] && pass "scaling.png written" || fail "no PNG"
finish
