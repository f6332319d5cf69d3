#!/usr/bin/env bash
# Submits a strong and weak scaling study to Slurm: one slurm/scaling.sbatch job per (mode, rank count),
# each after the one before (so no two share a node), then one that writes OUT_DIR/scaling.md and
# scaling.png with scripts/plot_scaling.py. Prints the last job's id.
#   slurm/submit_scaling.sh OUT_DIR DATA [CONFIG]      (CONFIG default configs/semseg_small.ini)
#   SCALING_RANKS ("1 2 4")  SCALING_CPUS_PER_NODE (cores per node; default: this machine's)
#   SCALING_STEPS (20)  SCALING_GLOBAL_BATCH (4, strong)  SCALING_BATCH (2 per rank, weak)
#   SCALING_SBATCH: more sbatch options for every point, e.g. on GPUs
#     "--gpus-per-task=1 --cpus-per-gpu=8 --gpu-bind=closest" (and train.device = cuda in CONFIG)
# Threads per rank = max(1, cores per node / ranks per node), ranks filling nodes one after another.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=$(realpath -m "$1") DATA=$(realpath "$2") CONFIG=$(realpath "${3:-configs/semseg_small.ini}")
RANKS=${SCALING_RANKS:-1 2 4}
CPUS=${SCALING_CPUS_PER_NODE:-$(env -u OMP_NUM_THREADS nproc)}
STEPS=${SCALING_STEPS:-20}
GLOBAL=${SCALING_GLOBAL_BATCH:-4}
PER_RANK=${SCALING_BATCH:-2}
mkdir -p "$OUT"
printf 'mode\tranks\tthreads\tcores\tbatch_per_rank\toversubscribed\trun_dir\n' >"$OUT/runs.tsv"
dependency=()
read -r -a extra <<<"${SCALING_SBATCH:-}"
for mode in strong weak; do
  for ranks in $RANKS; do
    if [ "$mode" = strong ]; then
      [ $((GLOBAL % ranks)) -eq 0 ] || continue
      batch=$((GLOBAL / ranks))
    else
      batch=$PER_RANK
    fi
    threads=$((CPUS / ranks))
    [ "$threads" -ge 1 ] || threads=1
    over=()
    [ $((ranks * threads)) -le "$CPUS" ] || over=(--overcommit)  # more ranks than cores: oversubscribed
    id=$(sbatch --parsable "${dependency[@]}" "${over[@]}" "${extra[@]}" --ntasks="$ranks" --cpus-per-task="$threads" \
      --output="$OUT/slurm-%j.out" \
      slurm/scaling.sbatch "$OUT" "$mode" "$batch" "$CONFIG" "$DATA" "$STEPS")
    dependency=(--dependency=afterany:"$id")
  done
done
sbatch --parsable "${dependency[@]}" --ntasks=1 --job-name=lidartrain-scaling-plot --output="$OUT/slurm-plot-%j.out" \
  --wrap "/usr/bin/python3 $(pwd)/scripts/plot_scaling.py $OUT"
