#!/usr/bin/env bash
# synth is byte-identical whatever the rank count; inspect reports what a drive should look like.
LT=$1
source "$(dirname "$0")/lib.sh"

"$MPIEXEC" -np 1 "$LT" synth --frames 64 --out "$WORK/np1" >/dev/null
"$MPIEXEC" -np 2 "$LT" synth --frames 64 --out "$WORK/np2" >/dev/null
"$MPIEXEC" -np 4 --oversubscribe "$LT" synth --frames 64 --shards 3 --out "$WORK/np4" >/dev/null
"$MPIEXEC" -np 1 "$LT" synth --frames 64 --shards 3 --out "$WORK/np1s3" >/dev/null
for pair in "np1 np2" "np1s3 np4"; do
  set -- $pair
  n=$(ls "$WORK/$1"/*.h5 | wc -l)
  [ "$n" -eq "$(ls "$WORK/$2"/*.h5 | wc -l)" ] || fail "$1 vs $2: shard counts differ"
  for shard in "$WORK/$1"/*.h5; do
    name=$(basename "$shard")
    if h5diff -r "$shard" "$WORK/$2/$name" >"$WORK/diff" 2>&1; then
      pass "h5diff $1/$name $2/$name: $(tail -1 "$WORK/diff")"
    else
      fail "h5diff $1/$name $2/$name: $(tail -3 "$WORK/diff")"
    fi
  done
done
[ -d "$WORK/np2.partial" ] && fail "staging directory left behind" || pass "no staging directory left"

"$MPIEXEC" -np 2 "$LT" inspect "$WORK/np2" --json "$WORK/inspect.json" >"$WORK/inspect.txt"
grep -q "^sidewalk" "$WORK/inspect.txt" && pass "inspect prints the label table" || fail "inspect table"
[ "$(json_get "$WORK/inspect.json" "j['frames']")" -eq 64 ] && pass "64 frames" || fail "frame count"
for cls in road sidewalk building vegetation terrain car; do
  n=$(json_get "$WORK/inspect.json" "j['label_frames']['$cls']")
  [ "$n" -gt 32 ] && pass "$cls in $n/64 frames" || fail "$cls in only $n/64 frames"
done
for cls in Pedestrian Cyclist; do
  n=$(json_get "$WORK/inspect.json" "j['box_frames']['$cls']")
  [ "$n" -gt 0 ] && pass "$cls boxes in $n frames" || fail "no $cls boxes"
done
json_get "$WORK/inspect.json" "int(60000*0.75 <= j['points_per_frame']['median'] <= 130000)" | grep -q 1 &&
  pass "median points per frame $(json_get "$WORK/inspect.json" "j['points_per_frame']['median']")" || fail "points per frame"
ratio=$(json_get "$WORK/inspect.json" "j['cost_p90_over_median']")
python3 -c "import sys; sys.exit(0 if $ratio >= 1.5 else 1)" && pass "cost p90/median $ratio" || fail "cost skew $ratio"

"$LT" synth --frames 32 --skew 0 --out "$WORK/flat" >/dev/null
"$LT" inspect "$WORK/flat" --json "$WORK/flat.json" >/dev/null
ratio=$(json_get "$WORK/flat.json" "j['cost_p90_over_median']")
python3 -c "import sys; sys.exit(0 if $ratio <= 1.15 else 1)" && pass "--skew 0: p90/median $ratio" || fail "skew 0: $ratio"
finish
