// The CPU's detection ops (kernels/cpu/ops.hpp; the CUDA side: kernels/cuda/detection.cu).
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

namespace lt::ops {

// ---- detection (CenterPoint) ---------------------------------------------------------------------

template <class T>
void gather_positions_forward(const T* maps, const int64_t* positions, int64_t k, int channels, int64_t plane,
                              T* rows) {
  for (int64_t r = 0; r < k; ++r) {
    const int64_t b = positions[r] / plane, hw = positions[r] % plane;
    for (int c = 0; c < channels; ++c) rows[r * channels + c] = maps[(b * channels + c) * plane + hw];
  }
}

template <class T>
void gather_positions_backward(const T* drows, const int64_t* positions, int64_t k, int channels, int64_t plane,
                               T* dmaps) {
  for (int64_t r = 0; r < k; ++r) {
    const int64_t b = positions[r] / plane, hw = positions[r] % plane;
    for (int c = 0; c < channels; ++c) dmaps[(b * channels + c) * plane + hw] += drows[r * channels + c];
  }
}

template <class T>
void max_pool3x3(const T* x, T* y, int64_t maps, int height, int width) {
#pragma omp parallel for schedule(static)
  for (int64_t m = 0; m < maps; ++m) {
    const T* in = x + m * height * width;
    T* out = y + m * height * width;
    for (int i = 0; i < height; ++i)
      for (int j = 0; j < width; ++j) {
        T best = in[int64_t(i) * width + j];
        for (int di = -1; di <= 1; ++di)
          for (int dj = -1; dj <= 1; ++dj) {
            const int a = i + di, b = j + dj;
            if (a >= 0 && a < height && b >= 0 && b < width) best = std::max(best, in[int64_t(a) * width + b]);
          }
        out[int64_t(i) * width + j] = best;
      }
  }
}

// ---- instantiations -------------------------------------------------------------------------

#define LT_INSTANTIATE(T)                                                                          \
  template void gather_positions_forward<T>(const T*, const int64_t*, int64_t, int, int64_t, T*);  \
  template void gather_positions_backward<T>(const T*, const int64_t*, int64_t, int, int64_t, T*); \
  template void max_pool3x3<T>(const T*, T*, int64_t, int, int);

LT_INSTANTIATE(float)
LT_INSTANTIATE(double)
#undef LT_INSTANTIATE

}  // namespace lt::ops
