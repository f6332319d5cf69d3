#!/usr/bin/env bash
# Sets up and builds (scripts/setup.sh), then runs every test with ctest: unit tests, MPI tests under
# mpirun -np 2 and -np 4 --oversubscribe, and the end-to-end shell tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Open MPI refuses to run as root unless told; CI runs as root.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
ctest --test-dir build --output-on-failure -j"$(nproc)" --timeout 900
