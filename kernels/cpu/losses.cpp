// The CPU's losses ops (kernels/cpu/ops.hpp; the CUDA side: kernels/cuda/losses.cu).
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

// ---- losses -------------------------------------------------------------------------------

template <class T>
double cross_entropy(const T* logits, const uint8_t* labels, int64_t rows, int classes, const T* class_weights,
                     int ignore_label, T* dlogits) {
  // One pass: each row's softmax (its exponentials once, in double) gives its loss and its gradient up to
  // the 1 / Σ weight that only the total knows; a second pass over the gradient applies that.
  std::vector<double> point_loss(size_t(rows), 0.0), point_weight(size_t(rows), 0.0);
#pragma omp parallel
  {
    std::vector<double> e(static_cast<size_t>(classes));
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      const int label = labels[r];
      T* d = dlogits ? dlogits + r * classes : nullptr;
      if (label == ignore_label || label >= classes) {
        if (d) std::fill(d, d + classes, T(0));
        continue;
      }
      const T* z = logits + r * classes;
      double max_logit = double(z[0]);
      for (int k = 1; k < classes; ++k) max_logit = std::max(max_logit, double(z[k]));
      double sum_exp = 0;
      for (int k = 0; k < classes; ++k) sum_exp += e[size_t(k)] = std::exp(double(z[k]) - max_logit);
      const double weight = class_weights ? double(class_weights[label]) : 1.0;
      point_loss[size_t(r)] = weight * (std::log(sum_exp) + max_logit - double(z[label]));
      point_weight[size_t(r)] = weight;
      if (d)
        for (int k = 0; k < classes; ++k) d[k] = T(weight * (e[size_t(k)] / sum_exp - (k == label ? 1.0 : 0.0)));
    }
  }
  double total_loss = 0, total_weight = 0;
  for (int64_t r = 0; r < rows; ++r) {
    total_loss += point_loss[size_t(r)];
    total_weight += point_weight[size_t(r)];
  }
  const double loss = total_weight > 0 ? total_loss / total_weight : 0.0;
  if (dlogits) {
    const T scale = total_weight > 0 ? T(1.0 / total_weight) : T(0);
    const int64_t n = rows * classes;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) dlogits[i] *= scale;
  }
  return loss;
}

template <class T>
double focal_loss(const T* logits, const T* targets, int64_t n, T* dlogits) {
  // Fixed chunks summed in order: the same bits whatever the thread count.
  constexpr int64_t kChunk = 4096;
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  std::vector<double> partial(size_t(chunks), 0.0);
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < chunks; ++c) {
    double sum = 0;
    for (int64_t i = c * kChunk; i < std::min(n, (c + 1) * kChunk); ++i) {
      T loss, grad;
      focal_loss_element(logits[i], targets[i], &loss, &grad);
      sum += double(loss);
      if (dlogits) dlogits[i] = grad;
    }
    partial[size_t(c)] = sum;
  }
  double total = 0;
  for (double v : partial) total += v;
  return total;
}

template <class T>
double l1_loss(const T* pred, const T* target, int64_t rows, int channels, T* dpred) {
  double total = 0;
  for (int64_t i = 0; i < rows * channels; ++i) {
    T grad;
    total += double(l1_element(pred[i], target[i], &grad));
    if (dpred) dpred[i] = grad;
  }
  return total;
}

// ---- instantiations -------------------------------------------------------------------------

#define LT_INSTANTIATE(T)                                                                      \
  template double cross_entropy<T>(const T*, const uint8_t*, int64_t, int, const T*, int, T*); \
  template double focal_loss<T>(const T*, const T*, int64_t, T*);                              \
  template double l1_loss<T>(const T*, const T*, int64_t, int, T*);

LT_INSTANTIATE(float)
LT_INSTANTIATE(double)
#undef LT_INSTANTIATE

}  // namespace lt::ops
