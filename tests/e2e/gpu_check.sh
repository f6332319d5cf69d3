#!/usr/bin/env bash
# scripts/gpu_check.sh, the one command a person with a GPU runs, here on the emulated CUDA kernels
# (GPU_CHECK_EMULATED=1: tiny models, 10 steps): every step of it runs and its JSON summary is whole and
# passes, so the first run on a GPU does not fail on the script itself. Its figures are no measurement.
LT=$1
DATA=$2
source "$(dirname "$0")/lib.sh"
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BUILD="$(cd "$(dirname "$LT")" && pwd)"

rc=0
GPU_CHECK_EMULATED=1 GPU_CHECK_DIR="$WORK/gpu_check" LIDARTRAIN_SHARED_DATA="$DATA" LIDARTRAIN="$LT" \
  LIDARTRAIN_TEST_UNIT="$BUILD/tests/test_unit" LIDARTRAIN_BENCH_CUDA="$BUILD/bench/bench_cuda" \
  bash "$ROOT/scripts/gpu_check.sh" >"$WORK/gpu_check.out" 2>&1 || rc=$?
[ "$rc" -eq 0 ] && pass "gpu_check.sh (emulated) exits 0" || fail "gpu_check.sh exit $rc: $(tail -30 "$WORK/gpu_check.out")"
/usr/bin/python3 - "$WORK/gpu_check/gpu_check.json" <<'PY' && pass "its summary is whole" || fail "summary: $(cat "$WORK/gpu_check/gpu_check.json" 2>&1 | head -c 3000)"
import json, sys
s = json.load(open(sys.argv[1]))
assert s['emulated'] is True and s['passed'] is True, (s.get('emulated'), s.get('passed'))
assert s['checks']['gpu_tests']['tests'] >= 4 and s['checks']['gpu_tests']['failures'] == 0, s['checks']['gpu_tests']
for model in ('semseg_small', 'bevdet_small'):
    c = s['checks'][model + '_losses']
    assert len(c['cuda']) == 10 and len(c['cpu']) == 10 and c['max_relative_difference'] <= 1e-3, c
    p = s['profile_' + model]
    assert p['step_ms'] > 0 and p['infer_p50_ms'] > 0 and p['peak_bytes'] > 0 and len(p['layers']) >= 5, p
    assert 'cuda-emulated' in p['device'], p['device']
for name, t in s['targets'].items():  # (the graphs' cut of the step time may be anything in emulation)
    assert 'note' in t or (t['measured'] is not None and (t['measured'] > 0 or name.endswith('_cut_batch1'))), (name, t)
# Mixed precision and graphs: each curve whole, fp16 with its loss scales, the graphed run replaying.
for model in ('semseg_small', 'bevdet_small'):
    for precision in ('bf16', 'fp16'):
        p = s['precision']['%s_%s' % (model, precision)]
        assert len(p['losses']) == len(p['fp32_losses']) == 10 and p['relative_difference'] is not None, p
    assert s['precision'][model + '_fp16']['loss_scales'][0] == 65536, s['precision'][model + '_fp16']
assert s['targets']['bevdet_small_graphs_step_time_cut_batch1']['graph_replays'] > 0, s['targets']
# train.comm=nccl, 1 rank and 2 (the emulated node has 2 GPUs): the ledger per step, and 2 ranks = 1 rank.
# (With SyncBN, as these runs have, the BN layers' per-channel sums still come to the host: a few KB.)
assert s['checks']['nccl_2_ranks_equal_1_rank']['passed'], s['checks']['nccl_2_ranks_equal_1_rank']
for run in ('nccl_np1', 'nccl_np2'):
    n = s['nccl'][run]
    assert len(n['ledger_per_step']) >= 2 and n['ledger_per_step'][1]['d2h_bytes'] <= 8192, n
    assert n['step_s'] > 0 and n['exposed_comm_s'] >= 0 and n['samples_per_s'] > 0, n
print('losses', s['checks']['semseg_small_losses']['max_relative_difference'],
      s['checks']['bevdet_small_losses']['max_relative_difference'])
PY
finish
