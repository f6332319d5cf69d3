#!/usr/bin/env bash
# Sets up and builds (scripts/setup.sh), then runs every test with ctest: unit tests, MPI tests under
# mpirun -np 2 and -np 4 --oversubscribe, and the end-to-end shell tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Open MPI refuses to run as root unless told; CI runs as root.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
ctest --test-dir build --output-on-failure -j"$(nproc)" --timeout 900

# The unit and MPI tests again, built by clang with AddressSanitizer and UndefinedBehaviorSanitizer (any
# report fails), then every fuzz target for a bounded number of inputs (README "Fuzzing": the longer runs
# are `scripts/fuzz.sh build-sanitize 20000`). The 30-step mixed-precision training comparisons (numerics,
# a minute each) run in the first pass only: their kernels are under the sanitizers in the op table's cases.
LIDARTRAIN_BUILD_DIR=build-sanitize LIDARTRAIN_BUILD_TYPE=RelWithDebInfo \
  LIDARTRAIN_CMAKE_ARGS="-DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DLIDARTRAIN_FUZZ=ON -DLIDARTRAIN_CUDA=OFF" \
  LIDARTRAIN_BUILD_TARGETS="test_unit test_mpi fuzz_targets" bash scripts/setup.sh
ctest --test-dir build-sanitize --output-on-failure -j"$(nproc)" --timeout 900 -E '^e2e\.|TrainsLikeFp32'
bash scripts/fuzz.sh build-sanitize "${FUZZ_RUNS:-4000}"
