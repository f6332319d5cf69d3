#include "src/train/optimizer.hpp"

#include <algorithm>
#include <cmath>

#include "kernels/backend.hpp"

namespace lt {

Optimizer::Optimizer(const OptimizerConfig& config, int64_t num_params)
    : config_(config), first_(size_t(num_params), 0.f), second_(config.type == "adamw" ? size_t(num_params) : 0, 0.f) {}

void Optimizer::step(ParamStore& params, double lr) {
  begin_step();
  update(params, lr, 0, params.size());
}

// This step's hyper-parameters (AdamW's bias corrections from the steps taken); weight decay is the caller's.
OptimizerStep Optimizer::step_hyper_parameters(double lr) const {
  OptimizerStep step;
  step.lr = float(lr), step.beta1 = float(config_.beta1), step.beta2 = float(config_.beta2);
  step.eps = float(config_.eps), step.momentum = float(config_.momentum), step.first_step = steps_ == 1;
  step.bias1 = float(1 - std::pow(config_.beta1, double(steps_)));
  step.bias2 = float(1 - std::pow(config_.beta2, double(steps_)));
  return step;
}

void Optimizer::update_on(const Backend& b, const ParamStore& params, float* values, const float* grads, double lr,
                          const float* gate) {
  if (!on_device_) {
    device_first_.upload(b, first_);
    if (config_.type == "adamw") device_second_.upload(b, second_);
    on_device_ = true;
  }
  if (device_decays_.size() != size_t(params.size())) {
    std::vector<uint8_t> decays(size_t(params.size()), 0);
    for (const TensorView& view : params.views())
      std::fill_n(decays.begin() + view.offset, view.size, uint8_t(view.decay ? 1 : 0));
    device_decays_.upload(b, decays);
  }
  // One launch over the flat buffer: weight decay per element from the tensors' flags.
  OptimizerStep step = step_hyper_parameters(lr);
  step.gate = gate;
  step.weight_decay = float(config_.weight_decay);
  step.decays = device_decays_.data();
  if (config_.type == "adamw")
    b.adamw_update(values, grads, device_first_.data(), device_second_.data(), params.size(), step);
  else
    b.sgd_update(values, grads, device_first_.data(), params.size(), step);
}

void Optimizer::pull_state_to_host() {
  if (!on_device_) return;
  device_first_.download(first_.data());
  if (config_.type == "adamw") device_second_.download(second_.data());
}

// Per tensor (weight decay is per tensor), through the CPU backend's fused update over the range.
void Optimizer::update(ParamStore& params, double lr, int64_t begin, int64_t end) {
  OptimizerStep step = step_hyper_parameters(lr);
  const Backend& cpu = cpu_backend();
  for (const TensorView& view : params.views()) {
    if (view.offset < begin || view.offset >= end) continue;
    step.weight_decay = view.decay ? float(config_.weight_decay) : 0.f;
    float* p = params.value(view.offset);
    const float* g = params.grad(view.offset);
    float* m = first_.data() + view.offset;
    if (config_.type == "adamw")
      cpu.adamw_update(p, g, m, second_.data() + view.offset, view.size, step);
    else
      cpu.sgd_update(p, g, m, view.size, step);
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
  double sum = 0;  // fixed chunks summed in order (the CPU backend's sum of squares)
  cpu_backend().sum_squares(grads.data(), int64_t(grads.size()), &sum);
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
