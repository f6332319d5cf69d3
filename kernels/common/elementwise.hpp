#pragma once
// Per-element bodies shared by the CPU kernels (kernels/cpu) and the CUDA kernels (kernels/cuda).
#include <cmath>

#include "kernels/common/hd.hpp"

namespace lt {

template <class T>
LT_HD T relu(T x) {
  return x > T(0) ? x : T(0);
}
// ReLU's gradient from its output: y > 0 exactly where x > 0.
template <class T>
LT_HD T relu_grad(T y, T dy) {
  return y > T(0) ? dy : T(0);
}

// BatchNorm: y = gamma * (x - mean) * invstd + beta.
template <class T>
LT_HD T batchnorm_apply(T x, T mean, T invstd, T gamma, T beta) {
  return gamma * (x - mean) * invstd + beta;
}
// dx for one element, given the channel's sums over the batch: sum_dy = Σ dy, sum_dy_xhat = Σ dy·x̂, and
// count = elements per channel (PyTorch's formula for training mode).
template <class T>
LT_HD T batchnorm_grad_input(T x, T dy, T mean, T invstd, T gamma, T sum_dy, T sum_dy_xhat, T count) {
  const T xhat = (x - mean) * invstd;
  return gamma * invstd * (dy - sum_dy / count - xhat * sum_dy_xhat / count);
}

// One AdamW step for one element (PyTorch's torch.optim.AdamW): decoupled weight decay, then Adam with
// bias correction. `bias1` = 1 - beta1^t, `bias2` = 1 - beta2^t.
LT_HD void adamw_update(float& param, float grad, float& exp_avg, float& exp_avg_sq, float lr, float beta1, float beta2,
                        float eps, float weight_decay, float bias1, float bias2) {
  param -= lr * weight_decay * param;
  exp_avg = beta1 * exp_avg + (1.f - beta1) * grad;
  exp_avg_sq = beta2 * exp_avg_sq + (1.f - beta2) * grad * grad;
  const float denom = sqrtf(exp_avg_sq / bias2) + eps;
  param -= lr * (exp_avg / bias1) / denom;
}

// One SGD-with-momentum step for one element (torch.optim.SGD, dampening 0, not Nesterov): weight
// decay is added to the gradient; the first step sets the buffer to the gradient.
LT_HD void sgd_update(float& param, float grad, float& momentum_buffer, float lr, float momentum, float weight_decay,
                      bool first_step) {
  const float g = grad + weight_decay * param;
  momentum_buffer = first_step ? g : momentum * momentum_buffer + g;
  param -= lr * momentum_buffer;
}

}  // namespace lt
