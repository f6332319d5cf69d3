#!/usr/bin/env bash
# Strong and weak scaling of `lidartrain train` over 1, 2 and 4 ranks on this machine (DESIGN.md §1).
#   scripts/scaling_study.sh [OUT_DIR]        (default runs/scaling)
#   SCALING_CONFIG   (configs/semseg_small.ini)   SCALING_STEPS (20)   SCALING_RANKS ("1 2 4")
#   SCALING_GLOBAL_BATCH (4: strong scaling)  SCALING_BATCH (2: frames per rank, weak scaling)
#   SCALING_DATA (a dataset; default: synth --frames 64 made once under OUT_DIR)
# Threads per rank = max(1, cores / ranks), so ranks × threads <= cores; a point with more ranks than
# cores is run with --oversubscribe and marked as such. On one machine every point uses all its cores,
# so the efficiency column (samples/s per core, relative to 1 rank) is the speedup of splitting the same
# cores into ranks; on a cluster (slurm/scaling.sbatch) cores grow with the ranks. Writes OUT_DIR/runs.tsv (one line per run) and
# the runs' directories, then scripts/plot_scaling.py turns them into OUT_DIR/scaling.md and scaling.png.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/scaling}
CONFIG=${SCALING_CONFIG:-configs/semseg_small.ini}
STEPS=${SCALING_STEPS:-20}
RANKS=${SCALING_RANKS:-1 2 4}
GLOBAL=${SCALING_GLOBAL_BATCH:-4}
PER_RANK=${SCALING_BATCH:-2}
LT=${LIDARTRAIN:-build/lidartrain}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
cores=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)  # nproc alone honours OMP_NUM_THREADS
mkdir -p "$OUT"
DATA=${SCALING_DATA:-$OUT/data}
[ -d "$DATA" ] || mpirun -np "$cores" "$LT" synth --frames 64 --seed 1 --out "$DATA" >/dev/null

printf 'mode\tranks\tthreads\tcores\tbatch_per_rank\toversubscribed\trun_dir\n' >"$OUT/runs.tsv"
for mode in strong weak; do
  for ranks in $RANKS; do
    if [ "$mode" = strong ]; then
      if [ $((GLOBAL % ranks)) -ne 0 ]; then echo "skip strong $ranks: $GLOBAL frames do not split"; continue; fi
      batch=$((GLOBAL / ranks))
    else
      batch=$PER_RANK
    fi
    threads=$((cores / ranks))
    [ "$threads" -ge 1 ] || threads=1
    over=no
    # Not bound to one core each: a rank's threads need cores of their own.
    extra=(--bind-to none)
    if [ "$ranks" -gt "$cores" ]; then over=yes; extra+=(--oversubscribe); fi
    run="$OUT/$mode-$ranks"
    rm -rf "$run"
    echo "== $mode scaling: $ranks rank(s) × $threads thread(s), $batch frame(s) per rank$([ $over = yes ] && echo ', oversubscribed')"
    OMP_NUM_THREADS=$threads mpirun -np "$ranks" "${extra[@]}" "$LT" train --config "$CONFIG" --data "$DATA" \
      --train.steps "$STEPS" --train.batch_size "$batch" --train.threads "$threads" --log.every "$STEPS" \
      --checkpoint.every 0 --data.val "" --run-dir "$run" | tail -n 1
    used=$((ranks * threads))
    [ "$used" -le "$cores" ] || used=$cores
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$mode" "$ranks" "$threads" "$used" "$batch" "$over" "$run" >>"$OUT/runs.tsv"
  done
done
/usr/bin/python3 scripts/plot_scaling.py "$OUT"
