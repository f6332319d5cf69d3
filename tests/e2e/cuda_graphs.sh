#!/usr/bin/env bash
# train.cuda_graphs end to end on emulated GPUs (LIDARTRAIN_CUDA_EMULATION=1: stream capture records the
# dense part's kernels and copies, and each replay runs them again, checking that every buffer they use is
# still the one captured): both models, 1 rank and 2 ranks over the emulated NCCL, give the bits of eager
# steps (checkpoints h5diff-identical); so does SyncBN over NCCL, whose sums are captured with the dense part
# and all-reduced again at each replay, also when the ranks' batch sizes differ from step to step (the ranks
# then replay, capture or run eagerly together); metrics.jsonl counts the replays; the CPU, and SyncBN over
# MPI (its sums go through the host), refuse it with one line.
LT=$1
source "$(dirname "$0")/lib.sh"

SEMSEG=("${TINY_SEMSEG[@]}")
BEVDET=("${TINY_BEVDET[@]}")
"$LT" synth --frames 5 --seed 1 --out "$WORK/train" >/dev/null
export LIDARTRAIN_CUDA_EMULATION=1
# train RANKS DIR STEPS [options…]: batch 2 per rank.
train() {
  local ranks=$1 dir=$2 steps=$3
  shift 3
  "$MPIEXEC" -np "$ranks" "$LT" train "$@" --data "$WORK/train" --train.steps "$steps" --train.batch_size 2 \
    --train.device cuda --log.every 1 --run-dir "$WORK/$dir" >"$WORK/$dir.log" 2>&1 ||
    fail "$dir: $(tail -3 "$WORK/$dir.log")"
}
same_bits() {  # same_bits NAME DIR_A DIR_B STEP
  local a b
  a=$(printf "%s/%s/checkpoints/ckpt-%08d.h5" "$WORK" "$2" "$4")
  b=$(printf "%s/%s/checkpoints/ckpt-%08d.h5" "$WORK" "$3" "$4")
  h5diff "$a" "$b" /model >/dev/null && h5diff "$a" "$b" /buffers >/dev/null && h5diff "$a" "$b" /optimizer >/dev/null &&
    pass "$1: parameters, BN buffers and optimizer state bit-identical after $4 steps" || fail "$1: checkpoints differ"
}
replays() { python3 -c "import json,sys; print(' '.join(str(json.loads(l).get('graph_replays', '-')) for l in open(sys.argv[1]) if '\"step\"' in l and '\"loss\"' in l))" "$1"; }
losses() { python3 -c "import json,sys; print(' '.join(repr(json.loads(l)['loss']) for l in open(sys.argv[1]) if '\"step\"' in l and '\"loss\"' in l))" "$1"; }

# One rank, 5 steps of 2 frames: step 1 warms up, step 2 captures, steps 3-5 replay (forward and backward).
for model in BEVDET SEMSEG; do
  declare -n options=$model
  train 1 "${model}_eager" 5 "${options[@]}"
  train 1 "${model}_graphs" 5 "${options[@]}" --train.cuda_graphs true
  same_bits "$model, 1 rank, graphs vs eager" "${model}_eager" "${model}_graphs" 5
  [ "$(losses "$WORK/${model}_eager/metrics.jsonl")" = "$(losses "$WORK/${model}_graphs/metrics.jsonl")" ] &&
    pass "$model: the same losses to the last bit" || fail "$model losses differ"
  r=$(replays "$WORK/${model}_graphs/metrics.jsonl")
  python3 -c "import sys; r=[int(v) for v in sys.argv[1].split()]; sys.exit(0 if len(r) == 5 and r[-1] > 0 and r == sorted(r) else 1)" "$r" &&
    pass "$model: graph replays so far, per step: $r" || fail "$model replays: $r"
  [ "$(replays "$WORK/${model}_eager/metrics.jsonl")" = "- - - - -" ] && pass "$model eager: no replay count" ||
    fail "$model eager: $(replays "$WORK/${model}_eager/metrics.jsonl")"
done

# Two ranks, the gradients over the emulated NCCL: graphs change nothing either.
train 2 np2_eager 3 "${BEVDET[@]}" --train.comm nccl
train 2 np2_graphs 3 "${BEVDET[@]}" --train.comm nccl --train.cuda_graphs true
same_bits "bevdet, 2 ranks over nccl, graphs vs eager" np2_eager np2_graphs 3

# SyncBN over NCCL: each BN layer of the graphed part all-reduces its sums inside the graph. Both models,
# and bevdet with 11 frames in buckets of 4 (train.balance bucket: one step per epoch gives rank 0 two frames
# and rank 1 one, so the ranks' dense shapes differ at times and only an agreement keeps their captured and
# eager collectives matched; the emulated NCCL fails a graph's collective matched with an eager one).
for model in BEVDET SEMSEG; do
  declare -n options=$model
  train 2 "${model}_sync_eager" 4 "${options[@]}" --train.comm nccl --train.sync_bn true
  train 2 "${model}_sync_graphs" 4 "${options[@]}" --train.comm nccl --train.sync_bn true --train.cuda_graphs true
  same_bits "$model, 2 ranks, SyncBN over nccl, graphs vs eager" "${model}_sync_eager" "${model}_sync_graphs" 4
  r=$(replays "$WORK/${model}_sync_graphs/metrics.jsonl")
  [ "${r##* }" -gt 0 ] && pass "$model SyncBN: graph replays so far, per step: $r" || fail "$model SyncBN replays: $r"
done
"$LT" synth --frames 11 --seed 2 --out "$WORK/train11" >/dev/null
train_11() {  # train_11 DIR [options…]
  local dir=$1
  shift
  "$MPIEXEC" -np 2 "$LT" train "${BEVDET[@]}" --data "$WORK/train11" --train.steps 8 --train.batch_size 2 \
    --train.device cuda --train.balance bucket --train.comm nccl --train.sync_bn true --run-dir "$WORK/$dir" "$@" \
    >"$WORK/$dir.log" 2>&1 || fail "$dir: $(tail -3 "$WORK/$dir.log")"
}
train_11 buckets_eager
train_11 buckets_graphs --train.cuda_graphs true
same_bits "bevdet, SyncBN, the ranks' batch sizes differing (buckets), graphs vs eager" buckets_eager buckets_graphs 8

# A graphed run resumes eagerly and an eager one with graphs: the checkpoint holds no graph.
resume() {  # resume DIR [options…]: steps 4 and 5 of a 5-step run that stopped after 3
  local dir=$1
  shift
  "$LT" train "${BEVDET[@]}" --data "$WORK/train" --train.steps 5 --train.batch_size 2 --train.device cuda \
    --log.every 1 --run-dir "$WORK/$dir" --resume auto "$@" >"$WORK/$dir.resume.log" 2>&1 ||
    fail "resume $dir: $(tail -3 "$WORK/$dir.resume.log")"
}
train 1 graphed_first 3 "${BEVDET[@]}" --train.cuda_graphs true
resume graphed_first
train 1 eager_first 3 "${BEVDET[@]}"
resume eager_first --train.cuda_graphs true
same_bits "bevdet, 3 steps graphed then 2 eager = 3 eager then 2 graphed" graphed_first eager_first 5

unset LIDARTRAIN_CUDA_EMULATION
expect_error "graphs on the CPU" "--train.cuda_graphs: CUDA graphs capture a GPU's launches and train.device is cpu" \
  "$LT" train "${BEVDET[@]}" --data "$WORK/train" --train.steps 1 --train.device cpu --train.cuda_graphs true \
  --run-dir "$WORK/cpu"
[ ! -e "$WORK/cpu/checkpoints" ] && pass "nothing trained" || fail "$(ls -R "$WORK/cpu")"
export LIDARTRAIN_CUDA_EMULATION=1
expect_error "graphs with SyncBN over MPI" \
  "--train.cuda_graphs with --train.sync_bn: with train.comm mpi SyncBN's sums go through the host" \
  "$LT" train "${BEVDET[@]}" --data "$WORK/train" --train.steps 1 --train.device cuda --train.comm mpi \
  --train.sync_bn true --train.cuda_graphs true --run-dir "$WORK/syncbn"
finish
