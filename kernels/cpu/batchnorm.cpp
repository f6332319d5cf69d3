// The CPU's batchnorm ops (kernels/cpu/ops.hpp; the CUDA side: kernels/cuda/batchnorm.cu).
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

// ---- batch norm ---------------------------------------------------------------------------------

namespace {

// sums[c] += Σ f(x, c), sums[C + c] += Σ g(x, c) over channel c, in a fixed order: for points
// (inner == 1) by fixed row chunks summed in order; for maps by channel, image after image.
template <class T, class First, class Second>
void channel_sums(const T* x, const BatchNormShape& s, double* sums, First first, Second second) {
  const int C = s.channels;
  std::fill(sums, sums + 2 * C, 0.0);
  if (s.inner == 1) {
    const int64_t chunks = (s.outer + kReductionChunk - 1) / kReductionChunk;
    std::vector<double> partial(size_t(chunks) * 2 * C, 0.0);
#pragma omp parallel for schedule(static)
    for (int64_t chunk = 0; chunk < chunks; ++chunk) {
      double* p = &partial[size_t(chunk) * 2 * C];
      for (int64_t r = chunk * kReductionChunk; r < std::min(s.outer, (chunk + 1) * kReductionChunk); ++r)
        for (int c = 0; c < C; ++c) {
          p[c] += first(r * C + c, c);
          p[C + c] += second(r * C + c, c);
        }
    }
    for (int64_t chunk = 0; chunk < chunks; ++chunk)
      for (int c = 0; c < 2 * C; ++c) sums[c] += partial[size_t(chunk) * 2 * C + c];
    return;
  }
#pragma omp parallel for schedule(static)
  for (int c = 0; c < C; ++c) {
    double a = 0, b = 0;
    for (int64_t o = 0; o < s.outer; ++o) {
      const int64_t base = (o * C + c) * s.inner;
      for (int64_t i = 0; i < s.inner; ++i) {
        a += first(base + i, c);
        b += second(base + i, c);
      }
    }
    sums[c] = a;
    sums[C + c] = b;
  }
  (void)x;
}

// Calls body(flat_index, channel) for every element, in parallel.
template <class Body>
void for_each_element(const BatchNormShape& s, Body body) {
  const int C = s.channels;
  if (s.inner == 1) {
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < s.outer; ++r)
      for (int c = 0; c < C; ++c) body(r * C + c, c);
    return;
  }
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t o = 0; o < s.outer; ++o)
    for (int c = 0; c < C; ++c) {
      const int64_t base = (o * C + c) * s.inner;
      for (int64_t i = 0; i < s.inner; ++i) body(base + i, c);
    }
}

}  // namespace

// dbeta += Σdy, dgamma += Σdy·x̂ (the sums of the backward), unless they are null.
template <class T>
void add_batchnorm_param_grads(const double* sums, int channels, T* dgamma, T* dbeta) {
  if (!dgamma || !dbeta) return;
  for (int c = 0; c < channels; ++c) {
    dbeta[c] += T(sums[c]);
    dgamma[c] += T(sums[channels + c]);
  }
}

template <class T>
void batchnorm_sums(const T* x, const BatchNormShape& s, double* sums) {
  channel_sums(
      x, s, sums, [&](int64_t i, int) { return double(x[i]); },
      [&](int64_t i, int) { return double(x[i]) * double(x[i]); });
  sums[2 * s.channels] = double(s.count());
}

template <class T>
void batchnorm_apply(const T* x, const T* mean, const T* invstd, const T* gamma, const T* beta, T* y,
                     const BatchNormShape& s) {
  for_each_element(s,
                   [&](int64_t i, int c) { y[i] = lt::batchnorm_apply(x[i], mean[c], invstd[c], gamma[c], beta[c]); });
}

template <class T>
void batchnorm_backward_sums(const T* x, const T* dy, const T* mean, const T* invstd, const BatchNormShape& s,
                             double* sums) {
  channel_sums(
      x, s, sums, [&](int64_t i, int) { return double(dy[i]); },
      [&](int64_t i, int c) { return double(dy[i]) * (double(x[i]) - double(mean[c])) * double(invstd[c]); });
}

template <class T>
void batchnorm_backward_apply(const T* x, const T* dy, const T* mean, const T* invstd, const T* gamma,
                              const double* sums, T* dx, T* dgamma, T* dbeta, const BatchNormShape& s) {
  const int C = s.channels;
  add_batchnorm_param_grads(sums, C, dgamma, dbeta);
  if (!dx) return;
  const T count = T(sums[2 * C]);
  for_each_element(s, [&](int64_t i, int c) {
    dx[i] = batchnorm_grad_input(x[i], dy[i], mean[c], invstd[c], gamma[c], T(sums[c]), T(sums[C + c]), count);
  });
}

template <class T>
void batchnorm_relu_apply(const T* x, const T* mean, const T* invstd, const T* gamma, const T* beta, T* y,
                          const BatchNormShape& s) {
  for_each_element(
      s, [&](int64_t i, int c) { y[i] = relu(lt::batchnorm_apply(x[i], mean[c], invstd[c], gamma[c], beta[c])); });
}

template <class T>
void batchnorm_relu_backward_sums(const T* x, const T* dy, const T* mean, const T* invstd, const T* gamma,
                                  const T* beta, const BatchNormShape& s, double* sums) {
  // dy masked by the ReLU (bn(x) > 0) into a scratch array, then BN's own sums over it. dy is loaded
  // whatever the mask (a select, not a conditional load, so the loop vectorizes); the mask inside the
  // double sums' loops measured 2.4× slower, a conditional load 3× (bench_ops BM_BatchNormRelu120kx32).
  thread_local std::vector<T> masked;
  masked.resize(size_t(s.outer * s.channels * s.inner));
  T* g = masked.data();
  for_each_element(s, [&](int64_t i, int c) {
    const T d = dy[i];
    g[i] = lt::batchnorm_apply(x[i], mean[c], invstd[c], gamma[c], beta[c]) > T(0) ? d : T(0);
  });
  batchnorm_backward_sums(x, g, mean, invstd, s, sums);
}

template <class T>
void batchnorm_relu_backward_apply(const T* x, const T* dy, const T* mean, const T* invstd, const T* gamma,
                                   const T* beta, const double* sums, T* dx, T* dgamma, T* dbeta,
                                   const BatchNormShape& s) {
  const int C = s.channels;
  add_batchnorm_param_grads(sums, C, dgamma, dbeta);
  if (!dx) return;
  const T count = T(sums[2 * C]);
  for_each_element(s, [&](int64_t i, int c) {
    const T d = dy[i];  // a select, not a conditional load (see batchnorm_relu_backward_sums)
    const T g = lt::batchnorm_apply(x[i], mean[c], invstd[c], gamma[c], beta[c]) > T(0) ? d : T(0);
    dx[i] = batchnorm_grad_input(x[i], g, mean[c], invstd[c], gamma[c], T(sums[c]), T(sums[C + c]), count);
  });
}

// ---- instantiations -------------------------------------------------------------------------

#define LT_INSTANTIATE(T)                                                                                             \
  template void batchnorm_relu_apply<T>(const T*, const T*, const T*, const T*, const T*, T*, const BatchNormShape&); \
  template void batchnorm_relu_backward_sums<T>(const T*, const T*, const T*, const T*, const T*, const T*,           \
                                                const BatchNormShape&, double*);                                      \
  template void batchnorm_relu_backward_apply<T>(const T*, const T*, const T*, const T*, const T*, const T*,          \
                                                 const double*, T*, T*, T*, const BatchNormShape&);                   \
  template void batchnorm_sums<T>(const T*, const BatchNormShape&, double*);                                          \
  template void batchnorm_apply<T>(const T*, const T*, const T*, const T*, const T*, T*, const BatchNormShape&);      \
  template void batchnorm_backward_sums<T>(const T*, const T*, const T*, const T*, const BatchNormShape&, double*);   \
  template void batchnorm_backward_apply<T>(const T*, const T*, const T*, const T*, const T*, const double*, T*, T*,  \
                                            T*, const BatchNormShape&);

LT_INSTANTIATE(float)
LT_INSTANTIATE(double)
#undef LT_INSTANTIATE

}  // namespace lt::ops
