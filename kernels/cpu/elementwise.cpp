// The CPU's elementwise ops (kernels/cpu/ops.hpp; the CUDA side: kernels/cuda/elementwise.cu).
#include "kernels/common/elementwise.hpp"

#include <omp.h>

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#include "kernels/cpu/ops.hpp"
#include "kernels/cpu/ops_common.hpp"

namespace lt::ops {

// ---- element-wise and layout ------------------------------------------------------------------

template <class T>
void relu_forward(const T* x, T* y, int64_t n) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) y[i] = relu(x[i]);
}

template <class T>
void relu_backward(const T* y, const T* dy, T* dx, int64_t n) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) dx[i] = relu_grad(y[i], dy[i]);
}

template <class T>
void concat_channels(const T* a, int ca, const T* b, int cb, int64_t outer, int64_t inner, T* out) {
#pragma omp parallel for schedule(static)
  for (int64_t o = 0; o < outer; ++o) {
    std::memcpy(out + o * (ca + cb) * inner, a + o * ca * inner, sizeof(T) * ca * inner);
    std::memcpy(out + (o * (ca + cb) + ca) * inner, b + o * cb * inner, sizeof(T) * cb * inner);
  }
}

template <class T>
void split_channels(const T* in, int ca, int cb, int64_t outer, int64_t inner, T* a, T* b) {
#pragma omp parallel for schedule(static)
  for (int64_t o = 0; o < outer; ++o) {
    if (a) std::memcpy(a + o * ca * inner, in + o * (ca + cb) * inner, sizeof(T) * ca * inner);
    if (b) std::memcpy(b + o * cb * inner, in + (o * (ca + cb) + ca) * inner, sizeof(T) * cb * inner);
  }
}

// ---- instantiations -------------------------------------------------------------------------

#define LT_INSTANTIATE(T)                                                               \
  template void relu_forward<T>(const T*, T*, int64_t);                                 \
  template void relu_backward<T>(const T*, const T*, T*, int64_t);                      \
  template void concat_channels<T>(const T*, int, const T*, int, int64_t, int64_t, T*); \
  template void split_channels<T>(const T*, int, int, int64_t, int64_t, T*, T*);

LT_INSTANTIATE(float)
LT_INSTANTIATE(double)
#undef LT_INSTANTIATE

}  // namespace lt::ops
