#!/usr/bin/env bash
# Installs what lidartrain needs from Debian (only what is missing), then configures and builds
# into build/. Idempotent: a second run installs nothing and rebuilds only what changed.
#   LIDARTRAIN_BUILD_TYPE  (default Release)      LIDARTRAIN_CMAKE_ARGS  extra cmake arguments
#   LIDARTRAIN_BUILD_DIR   (default build)        LIDARTRAIN_BUILD_TARGETS  targets (default all)
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  g++ make cmake pkg-config
  libopenmpi-dev openmpi-bin             # MPI: rendezvous, all-reduce
  libhdf5-openmpi-dev hdf5-tools         # parallel HDF5; h5diff/h5dump for the tests and users
  libeigen3-dev                          # GEMM for the CPU kernels
  libboost-program-options-dev           # command line and INI configs
  libgtest-dev libbenchmark-dev          # tests and benchmarks
  python3                                # the end-to-end tests read JSON with it
  python3-h5py python3-matplotlib        # checkpoint comparisons in the tests; scaling plots
  slurm-wlm munge                        # slurm/local-cluster.sh: the Slurm tests run on a real one-node cluster
  clang libclang-rt-14-dev libomp-dev    # the sanitizer build and the libFuzzer targets (scripts/test.sh)
)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# nvcc is not on PATH in every shell; CMake finds it at /usr/local/cuda when present (LIDARTRAIN_CUDA=AUTO).
build_dir=${LIDARTRAIN_BUILD_DIR:-build}
cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE="${LIDARTRAIN_BUILD_TYPE:-Release}" ${LIDARTRAIN_CMAKE_ARGS:-} >/dev/null
if [ -n "${LIDARTRAIN_BUILD_TARGETS:-}" ]; then
  cmake --build "$build_dir" -j"$(nproc)" --target ${LIDARTRAIN_BUILD_TARGETS}
else
  cmake --build "$build_dir" -j"$(nproc)"
fi
