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

// BatchNorm's per-channel statistics for channel c from the sums (Σx at c, Σx² at C + c, over `count`
// elements): in training (count > 0) the batch mean and 1/√(var + ε), and the running statistics moved
// towards them (momentum 0.1, unbiased variance, as torch.nn.BatchNorm); otherwise the running ones.
LT_HD void batchnorm_statistics(const double* sums, int channels, int c, double count, bool training, float* mean,
                                float* invstd, float* running_mean, float* running_var) {
  using std::sqrt;
  constexpr double kEps = 1e-5, kMomentum = 0.1;
  if (training && count > 0) {
    const double m = sums[c] / count, second = sums[channels + c] / count - m * m;
    const double var = second > 0.0 ? second : 0.0;
    mean[c] = float(m);
    invstd[c] = float(1.0 / sqrt(var + kEps));
    const double unbiased = count > 1 ? var * count / (count - 1) : var;
    running_mean[c] = float((1 - kMomentum) * running_mean[c] + kMomentum * m);
    running_var[c] = float((1 - kMomentum) * running_var[c] + kMomentum * unbiased);
  } else {
    mean[c] = running_mean[c];
    invstd[c] = float(1.0 / sqrt(double(running_var[c]) + kEps));
  }
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

// The gate of an optimizer step run on a device without the host (OptimizerStep::gate), from the global
// gradient norm's square and the global loss: factor = the clipping factor for max_norm (max_norm /
// (norm + 1e-6) in double when max_norm > 0 and norm > max_norm, as clip_to_norm, else 1); open = 1 when
// the norm and the loss are finite, else 0 (the step is skipped: parameters and moments untouched).
LT_HD void gradient_gate(double norm_sq, double loss, double max_norm, float& factor, float& open) {
  using std::isfinite;
  using std::sqrt;
  const double norm = sqrt(norm_sq);
  open = isfinite(norm) && isfinite(loss) ? 1.f : 0.f;
  factor = max_norm > 0 && norm > max_norm ? float(max_norm / (norm + 1e-6)) : 1.f;
}

// The gate of a step whose loss was multiplied by a dynamic loss scale (fp16: torch.cuda.amp.GradScaler's
// unscale_ and update), from the scaled gradients' norm² and the global loss; scaler = {scale, steps since
// the last overflow}. The norm² is unscaled in place (÷ scale², so the reported norm and the clip are the
// true gradients'), the gate is gradient_gate's with its factor ÷ scale (the optimizer then reads the true,
// clipped gradients), and the scale is updated as GradScaler updates it: a closed gate (an inf or NaN)
// halves it and restarts the count; an open one counts, and the growth_interval-th in a row doubles it.
LT_HD void scaled_gradient_gate(double& norm_sq, double loss, double max_norm, double& scale, double& good_steps,
                                double growth_interval, float& factor, float& open) {
  norm_sq = norm_sq / (scale * scale);
  gradient_gate(norm_sq, loss, max_norm, factor, open);
  factor = float(double(factor) / scale);
  if (open == 0.f) {
    scale *= 0.5;
    good_steps = 0;
  } else if (++good_steps >= growth_interval) {
    scale *= 2.0;
    good_steps = 0;
  }
}

// A micro-batch's share of the global batch's loss from its terms, as the host computes it
// (Model::forward_loss): Σ_i (weight_i · term_i) / normaliser, added in term order; 0 when normaliser ≤ 0.
LT_HD double loss_share(const double* terms, int count, double weight0, double weight1, double normaliser) {
  if (!(normaliser > 0)) return 0.0;
  double share = 0;
  for (int i = 0; i < count; ++i) share += (i == 0 ? weight0 : weight1) * terms[i] / normaliser;
  return share;
}

// One SGD-with-momentum step for one element (torch.optim.SGD, dampening 0, not Nesterov): weight
// decay is added to the gradient; the first step sets the buffer to the gradient.
LT_HD void sgd_update(float& param, float grad, float& momentum_buffer, float lr, float momentum, float weight_decay,
                      bool first_step) {
  const float g = grad + weight_decay * param;
  momentum_buffer = first_step ? g : momentum * momentum_buffer + g;
  param -= lr * momentum_buffer;
}

template <class T>
LT_HD T sigmoid(T x) {
  using std::exp;
  return T(1) / (T(1) + exp(-x));
}

// CenterNet's focal loss of one heatmap element (CenterPoint, OpenPCDet FocalLossCenterNet): logit x,
// target g in [0, 1] (1 at an object's centre, a Gaussian around it), p = sigmoid(x) clamped to
// [1e-4, 1 − 1e-4] (outside it the clamp passes no gradient, as torch.clamp):
//   g == 1:  −(1 − p)^α log p           otherwise:  −(1 − g)^β p^α log(1 − p),     α = 2, β = 4.
// Writes the element's loss and d loss / d x.
template <class T>
LT_HD void focal_loss_element(T x, T g, T* loss, T* dloss_dx) {
  using std::log;
  const T lo = T(1e-4), hi = T(1) - T(1e-4);
  const T p_raw = sigmoid(x);
  const bool clamped = p_raw < lo || p_raw > hi;
  const T p = p_raw < lo ? lo : (p_raw > hi ? hi : p_raw);
  T dloss_dp;
  if (g == T(1)) {
    const T q = T(1) - p;
    *loss = -log(p) * q * q;
    dloss_dp = T(2) * q * log(p) - q * q / p;
  } else {
    const T w1 = T(1) - g, w = w1 * w1 * w1 * w1;
    *loss = -log(T(1) - p) * p * p * w;
    dloss_dp = -w * (T(2) * p * log(T(1) - p) - p * p / (T(1) - p));
  }
  *dloss_dx = clamped ? T(0) : dloss_dp * p_raw * (T(1) - p_raw);
}

// |pred − target| and its gradient (the sign; 0 at equality, as torch's L1).
template <class T>
LT_HD T l1_element(T pred, T target, T* dloss_dpred) {
  const T d = pred - target;
  *dloss_dpred = d > T(0) ? T(1) : (d < T(0) ? T(-1) : T(0));
  return d > T(0) ? d : -d;
}

}  // namespace lt
