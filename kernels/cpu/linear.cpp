// The CPU's linear ops (kernels/cpu/ops.hpp; the CUDA side: kernels/cuda/linear.cu).
#include <omp.h>

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#include "kernels/common/elementwise.hpp"
#include "kernels/cpu/ops.hpp"
#include "kernels/cpu/ops_common.hpp"
#include "kernels/cpu/skinny.hpp"

namespace lt::ops {

// ---- linear -----------------------------------------------------------------------------------

template <class T>
void linear_forward(const T* x, const T* weight, const T* bias, T* y, int64_t rows, int in, int out) {
  if constexpr (std::is_same_v<T, float>)
    if (skinny(in, out)) return skinny_product<false>(x, rows, SkinnyWeights::transposed(weight, bias, out, in), y);
  ConstMatrixMap<T> X(x, rows, in), W(weight, out, in);
  MatrixMap<T> Y(y, rows, out);
  Y.noalias() = X * W.transpose();
  if (bias) {
    const Eigen::Map<const Eigen::Matrix<T, 1, Eigen::Dynamic>> b(bias, out);
    Y.rowwise() += b;
  }
}

template <class T>
void linear_backward(const T* x, const T* weight, const T* dy, T* dx, T* dweight, T* dbias, int64_t rows, int in,
                     int out) {
  ConstMatrixMap<T> X(x, rows, in), W(weight, out, in), DY(dy, rows, out);
  if (dx) {
    bool done = false;
    if constexpr (std::is_same_v<T, float>)
      if ((done = skinny(out, in))) skinny_product<false>(dy, rows, SkinnyWeights::as_is(weight, out, in), dx);
    if (!done) MatrixMap<T>(dx, rows, in).noalias() = DY * W;
  }
  MatrixMap<T> DW(dweight, out, in);
  DW.noalias() += DY.transpose() * X;
  if (dbias) {
    // Column sums in fixed chunks of rows, chunks added in order.
    const int64_t chunks = (rows + kReductionChunk - 1) / kReductionChunk;
    std::vector<double> partial(size_t(chunks) * out, 0.0);
#pragma omp parallel for schedule(static)
    for (int64_t chunk = 0; chunk < chunks; ++chunk) {
      double* p = &partial[size_t(chunk) * out];
      for (int64_t r = chunk * kReductionChunk; r < std::min(rows, (chunk + 1) * kReductionChunk); ++r)
        for (int o = 0; o < out; ++o) p[o] += double(dy[r * out + o]);
    }
    for (int o = 0; o < out; ++o) {
      double sum = 0;
      for (int64_t chunk = 0; chunk < chunks; ++chunk) sum += partial[size_t(chunk) * out + o];
      dbias[o] += T(sum);
    }
  }
}

template <class T>
void linear_relu_forward(const T* x, const T* weight, const T* bias, T* y, int64_t rows, int in, int out) {
  if constexpr (std::is_same_v<T, float>)
    if (skinny(in, out)) return skinny_product<true>(x, rows, SkinnyWeights::transposed(weight, bias, out, in), y);
  ConstMatrixMap<T> W(weight, out, in);
  const int64_t blocks = (rows + kPointBlock - 1) / kPointBlock;
#pragma omp parallel for schedule(static)
  for (int64_t block = 0; block < blocks; ++block) {
    const int64_t r0 = block * kPointBlock, n = std::min(kPointBlock, rows - r0);
    MatrixMap<T>(y + r0 * out, n, out).noalias() = ConstMatrixMap<T>(x + r0 * in, n, in) * W.transpose();
    for (int64_t r = r0; r < r0 + n; ++r) {
      T* row = y + r * out;
      for (int o = 0; o < out; ++o) row[o] = std::max(row[o] + bias[o], T(0));
    }
  }
}

// ---- instantiations -------------------------------------------------------------------------

#define LT_INSTANTIATE(T)                                                                        \
  template void linear_forward<T>(const T*, const T*, const T*, T*, int64_t, int, int);          \
  template void linear_backward<T>(const T*, const T*, const T*, T*, T*, T*, int64_t, int, int); \
  template void linear_relu_forward<T>(const T*, const T*, const T*, T*, int64_t, int, int);

LT_INSTANTIATE(float)
LT_INSTANTIATE(double)
#undef LT_INSTANTIATE

}  // namespace lt::ops
