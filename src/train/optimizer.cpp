#include "src/train/optimizer.hpp"

#include <algorithm>
#include <cmath>

#include "kernels/common/elementwise.hpp"

namespace lt {

Optimizer::Optimizer(const OptimizerConfig& config, int64_t num_params)
    : config_(config), first_(size_t(num_params), 0.f), second_(config.type == "adamw" ? size_t(num_params) : 0, 0.f) {}

void Optimizer::step(ParamStore& params, double lr) {
  begin_step();
  update(params, lr, 0, params.size());
}

void Optimizer::update(ParamStore& params, double lr, int64_t begin, int64_t end) {
  const float bias1 = float(1 - std::pow(config_.beta1, double(steps_)));
  const float bias2 = float(1 - std::pow(config_.beta2, double(steps_)));
  for (const TensorView& view : params.views()) {
    if (view.offset < begin || view.offset >= end) continue;
    float* p = params.value(view.offset);
    const float* g = params.grad(view.offset);
    float* m = first_.data() + view.offset;
    const float decay = view.decay ? float(config_.weight_decay) : 0.f;
    if (config_.type == "adamw") {
      float* v = second_.data() + view.offset;
#pragma omp parallel for schedule(static)
      for (int64_t i = 0; i < view.size; ++i)
        adamw_update(p[i], g[i], m[i], v[i], float(lr), float(config_.beta1), float(config_.beta2), float(config_.eps),
                     decay, bias1, bias2);
    } else {
#pragma omp parallel for schedule(static)
      for (int64_t i = 0; i < view.size; ++i)
        sgd_update(p[i], g[i], m[i], float(lr), float(config_.momentum), decay, steps_ == 1);
    }
  }
}

std::vector<std::pair<std::string, std::vector<float>*>> Optimizer::state() {
  if (config_.type == "adamw") return {{"exp_avg", &first_}, {"exp_avg_sq", &second_}};
  return {{"momentum_buffer", &first_}};
}

double learning_rate(const ScheduleConfig& s, int64_t step) {
  constexpr double kPi = 3.14159265358979323846;
  const double total = double(std::max<int64_t>(1, s.total_steps));
  const auto cosine = [&](double from, double to, double progress) {
    return to + (from - to) * 0.5 * (1 + std::cos(kPi * std::clamp(progress, 0.0, 1.0)));
  };
  if (s.type == "onecycle") {
    // OneCycleLR(three_phase=False): up from peak/div over pct_start·total - 1 steps, then down.
    const double initial = s.peak_lr / s.div_factor, final_lr = initial / s.final_div_factor;
    const double up_end = s.warmup_fraction * total - 1, down_end = total - 1;
    if (double(step) <= up_end) return cosine(initial, s.peak_lr, up_end > 0 ? double(step) / up_end : 1.0);
    return cosine(s.peak_lr, final_lr, (double(step) - up_end) / std::max(1.0, down_end - up_end));
  }
  const double warmup = std::floor(s.warmup_fraction * total);
  if (double(step) < warmup) return s.peak_lr * double(step + 1) / warmup;
  return cosine(s.peak_lr, s.peak_lr * s.min_lr_ratio, (double(step) - warmup) / std::max(1.0, total - warmup));
}

double gradient_norm(const std::vector<float>& grads) {
  constexpr size_t kChunk = 1 << 14;
  const size_t chunks = (grads.size() + kChunk - 1) / kChunk;
  std::vector<double> partial(chunks, 0.0);
#pragma omp parallel for schedule(static)
  for (size_t c = 0; c < chunks; ++c)
    for (size_t i = c * kChunk; i < std::min(grads.size(), (c + 1) * kChunk); ++i)
      partial[c] += double(grads[i]) * double(grads[i]);
  double sum = 0;
  for (double p : partial) sum += p;
  return std::sqrt(sum);
}

void clip_to_norm(std::vector<float>& grads, double norm, double max_norm) {
  if (!(max_norm > 0 && norm > max_norm)) return;
  const float scale = float(max_norm / (norm + 1e-6));
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < grads.size(); ++i) grads[i] *= scale;
}

double clip_grad_norm(std::vector<float>& grads, double max_norm) {
  const double norm = gradient_norm(grads);
  clip_to_norm(grads, norm, max_norm);
  return norm;
}

}  // namespace lt
