#!/usr/bin/env bash
# The command line: help, version, commands not built yet, config files with bad keys and values.
LT=$1
source "$(dirname "$0")/lib.sh"

"$LT" --help | grep -q "synth" && pass "--help lists commands" || fail "--help"
"$LT" --help >"$WORK/usage"
for mode in "infer --checkpoint CKPT --data DIR --out OUT" "eval --predictions OUT --data DIR" "inspect CKPT.h5" \
  "infer --checkpoint CKPT --input FRAME.bin" "eval --checkpoint CKPT --data DIR"; do
  grep -qF "lidartrain $mode" "$WORK/usage" && pass "--help lists 'lidartrain $mode'" || fail "--help lacks '$mode'"
done
for cmd in synth convert train eval infer inspect profile balance; do
  "$LT" "$cmd" --help >"$WORK/help" && grep -q "Usage: lidartrain $cmd" "$WORK/help" && pass "$cmd --help" ||
    fail "$cmd --help"
done
"$LT" --version | grep -qE "^lidartrain [0-9]+\.[0-9]+\.[0-9]+ \(git [0-9a-f]{12}|unknown\)" && pass "--version" ||
  fail "--version: $("$LT" --version)"

expect_error "eval needs a checkpoint or predictions" "--checkpoint CKPT or --predictions DIR: give one of them" "$LT" eval --data x
expect_error "infer needs an input" "--input FRAME.bin or --data DIR: what to infer on" "$LT" infer --checkpoint x

expect_error "unknown command" "unknown command 'trian'" "$LT" trian
expect_error "missing required option" "--out' is required" "$LT" synth --frames 3
expect_error "malformed number" "frames" "$LT" synth --frames many --out "$WORK/x"
expect_error "negative frames" "--frames: must be > 0" "$LT" synth --frames -2 --out "$WORK/x"

cat >"$WORK/good.ini" <<'INI'
[data]
train = /data/train
[model]
name = semseg
[train]
steps = 100
lr = 0.002
optimizer = sgd
INI
"$LT" profile --config "$WORK/good.ini" --model.bev_channels 8,8,8 --points 3000 --repeat 1 >"$WORK/profile" &&
  grep -q "^total" "$WORK/profile" && pass "a valid config (profile reads it)" || fail "valid config"
expect_error "train without data" "no training dataset given" "$LT" train --model.name semseg
printf '[train]\nsteps = 10\nwarmup_steps = 3\n' >"$WORK/unknown.ini"
expect_error "unknown config key" "unknown.ini.*train.warmup_steps" "$LT" train --config "$WORK/unknown.ini"
printf '[train]\nsteps = lots\n' >"$WORK/malformed.ini"
expect_error "malformed config value" "malformed.ini.*train.steps" "$LT" train --config "$WORK/malformed.ini"
printf '[train]\noptimizer = adam\n' >"$WORK/choice.ini"
expect_error "bad choice" "train.optimizer: 'adam' is not one of adamw, sgd" "$LT" train --config "$WORK/choice.ini"
expect_error "override is checked too" "train.balance: 'fair'" "$LT" train --config "$WORK/good.ini" --train.balance=fair
"$LT" synth --frames 40 --out "$WORK/ds" >/dev/null
"$LT" balance --data "$WORK/ds" --ranks 2,8 --batch 2 --json "$WORK/balance.json" >"$WORK/balance.txt"
[ "$(json_get "$WORK/balance.json" "len(j['runs'])")" -eq 6 ] && grep -q " lpt " "$WORK/balance.txt" &&
  pass "balance: 3 strategies x 2 rank counts" || fail "balance: $(cat "$WORK/balance.txt")"
expect_error "balance with bad ranks" "--ranks: '2,x'" "$LT" balance --data "$WORK/ds" --ranks 2,x
expect_error "missing config file" "nope.ini: config file not found" "$LT" train --config "$WORK/nope.ini"
finish
