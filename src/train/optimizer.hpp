#pragma once
// Fused optimizers over the flat parameter buffer, learning-rate schedules and gradient clipping
// (DESIGN.md §5). Semantics are PyTorch's: torch.optim.AdamW, torch.optim.SGD(momentum),
// torch.optim.lr_scheduler.OneCycleLR (cosine annealing) and cosine with linear warm-up.
#include <cstdint>
#include <string>
#include <vector>

#include "kernels/buffer.hpp"
#include "src/common/params.hpp"

namespace lt {

struct OptimizerConfig {
  std::string type = "adamw";  // adamw | sgd
  double weight_decay = 0.01;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;  // adamw
  double momentum = 0.9;                          // sgd
};

class Optimizer {
 public:
  Optimizer(const OptimizerConfig& config, int64_t num_params);
  // One step at learning rate `lr`; weight decay only on views with decay set.
  void step(ParamStore& params, double lr);
  // The same step in pieces: begin_step() once, then update() for ranges that together cover the
  // buffer, each a whole number of tensors (step() is one range: the trainer updates once every gradient
  // bucket has arrived, since clipping and the non-finite guard need the global norm).
  void begin_step() { ++steps_; }
  void undo_step() { --steps_; }  // a step whose gate turned out closed (update_on)
  void update(ParamStore& params, double lr, int64_t begin, int64_t end);
  // The whole update on a backend's memory (resident training): `values` and `grads` are its flat
  // buffers laid out as `params`' views. The state (as resumed, or zeros) is uploaded at the first call
  // and stays there; pull_state_to_host() brings it back for state() (checkpoints). The same per-element
  // bodies as update(), in one launch over the whole flat buffer (OptimizerStep::decays).
  // `gate` (OptimizerStep::gate): clipping and the skip of a non-finite step decided on the device.
  void update_on(const Backend& backend, const ParamStore& params, float* values, const float* grads, double lr,
                 const float* gate = nullptr);
  void pull_state_to_host();
  int64_t steps_taken() const { return steps_; }
  const OptimizerConfig& config() const { return config_; }
  // State by name as checkpoints store it: "exp_avg", "exp_avg_sq" (adamw) or "momentum_buffer" (sgd).
  std::vector<std::pair<std::string, std::vector<float>*>> state();
  void set_steps_taken(int64_t steps) { steps_ = steps; }

 private:
  OptimizerStep step_hyper_parameters(double lr) const;
  OptimizerConfig config_;
  std::vector<float> first_, second_;  // exp_avg, exp_avg_sq  |  momentum_buffer, (unused)
  int64_t steps_ = 0;
  Buffer<float> device_first_, device_second_;  // update_on's state, current while on_device_
  Buffer<uint8_t> device_decays_;               // update_on's weight-decay flag per element (uploaded once)
  bool on_device_ = false;
};

struct ScheduleConfig {
  std::string type = "onecycle";  // onecycle | cosine
  double peak_lr = 1e-3;
  int64_t total_steps = 1;
  double warmup_fraction = 0.1;   // onecycle: pct_start; cosine: linear warm-up share
  double div_factor = 25;         // onecycle: initial lr = peak / div_factor
  double final_div_factor = 1e4;  // onecycle: final lr = initial / final_div_factor
  double min_lr_ratio = 0.01;     // cosine: final lr = peak · ratio
};
// Learning rate for step `step` (0-based; the rate used by the step-th update).
double learning_rate(const ScheduleConfig& schedule, int64_t step);

// The gradients' global L2 norm, summed in double in a fixed order.
double gradient_norm(const std::vector<float>& grads);
// Scales the gradients of norm `norm` so that it is at most `max_norm` (0: no clipping).
void clip_to_norm(std::vector<float>& grads, double norm, double max_norm);
// Both: returns the norm before clipping.
double clip_grad_norm(std::vector<float>& grads, double max_norm);

}  // namespace lt
