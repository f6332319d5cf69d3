#pragma once
// What the CPU ops' files (kernels/cpu/<area>.cpp) share: Eigen maps of row-major arrays and the fixed
// chunk of reductions over points. Internal to kernels/cpu.
#include <Eigen/Dense>
#include <cstdint>

namespace lt::ops {

template <class T>
using RowMatrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class T>
using MatrixMap = Eigen::Map<RowMatrix<T>>;
template <class T>
using ConstMatrixMap = Eigen::Map<const RowMatrix<T>>;
template <class T>
using ColumnMatrixMap = Eigen::Map<Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic>>;
template <class T>
using ConstColumnMatrixMap = Eigen::Map<const Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic>>;

// Row chunk for reductions over points: a fixed size, so the summation order does not depend on the
// number of threads.
constexpr int64_t kReductionChunk = 2048;

// Rows per block of the fused point layers: a block's outputs (≤ 256 × 64 floats) stay in L1/L2 between
// the GEMM that writes them and the epilogue that reads them.
constexpr int64_t kPointBlock = 256;

}  // namespace lt::ops
