#!/usr/bin/env bash
# Same seed, two lidartrain binaries (e.g. the commit before a refactoring and after it):
#   scripts/compare_builds.sh OLD_BINARY NEW_BINARY [WORK_DIR]
# For semseg_small and bevdet_small on 1 and 2 ranks, 3 training steps each: every dataset of the two
# checkpoints (/model, /buffers, /optimizer, /state), the per-step losses, and what `infer --data` of the
# OLD checkpoint writes with each binary (per-frame files byte for byte; the per-rank predictions files
# by their datasets). Prints one line per model and rank count; exits 1 if anything differs.
set -u
OLD=$1 NEW=$2 W=${3:-$(mktemp -d /tmp/lidartrain_compare.XXXXXX)}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
mkdir -p "$W" && "$NEW" synth --frames 8 --seed 1 --out "$W/d" --force >/dev/null
status=0
for model in semseg bevdet; do
  for ranks in 1 2; do
    for b in old new; do
      BIN=$OLD && [ $b = new ] && BIN=$NEW
      launch=("$BIN") && [ "$ranks" = 2 ] && launch=(mpirun -np 2 "$BIN")
      rm -rf "$W/$model-$ranks-$b" "$W/inf-$model-$ranks-$b"
      "${launch[@]}" train --config "$ROOT/configs/${model}_small.ini" --data "$W/d" --train.steps 3 \
        --checkpoint.every 3 --log.every 1 --run-dir "$W/$model-$ranks-$b" >/dev/null 2>&1 || echo "train failed: $b"
      "$BIN" infer --checkpoint "$W/$model-$ranks-old/checkpoints/ckpt-00000003.h5" --data "$W/d" \
        --out "$W/inf-$model-$ranks-$b" >/dev/null 2>&1 || echo "infer failed: $b"
    done
    a="$W/$model-$ranks-old/checkpoints/ckpt-00000003.h5" c="$W/$model-$ranks-new/checkpoints/ckpt-00000003.h5"
    same=yes
    for group in /model /buffers /optimizer /state; do h5diff "$a" "$c" $group >/dev/null || same="no ($group)"; done
    losses=yes
    diff <(grep -o '"loss":[^,]*' "$W/$model-$ranks-old/metrics.jsonl") \
      <(grep -o '"loss":[^,]*' "$W/$model-$ranks-new/metrics.jsonl") >/dev/null || losses=no
    frames=yes
    diff -r -x manifest.json -x predictions "$W/inf-$model-$ranks-old" "$W/inf-$model-$ranks-new" >/dev/null || frames=no
    predictions=yes
    for f in "$W/inf-$model-$ranks-old"/predictions/*.h5; do
      h5diff "$f" "$W/inf-$model-$ranks-new/predictions/$(basename "$f")" >/dev/null || predictions=no
    done
    echo "$model, $ranks rank(s): checkpoint datasets equal: $same; losses equal: $losses;" \
      "infer per-frame files byte-identical: $frames; predictions datasets equal: $predictions"
    [ "$same$losses$frames$predictions" = yesyesyesyes ] || status=1
  done
done
exit $status
