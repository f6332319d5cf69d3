// Built instead of kernels/cuda/*.cu when the build has no CUDA compiler.
#include "kernels/backend.hpp"
#include "kernels/cuda/device.hpp"

namespace lt {

int cuda_device_count() {
  return 0;
}

std::string cuda_summary() {
  return "CUDA: not built (no nvcc at configure time)";
}

void cuda_select_device(int) {}

std::string cuda_current_device_name() {
  return "no CUDA";
}

std::string cuda_current_device_identity() {
  return "no CUDA";
}

namespace {
bool deterministic = true;
}
void set_deterministic_convolutions(bool on) {
  deterministic = on;
}
bool deterministic_convolutions() {
  return deterministic;
}
std::string cudnn_summary() {
  return "cuDNN: not built";
}

const Backend* cuda_backend() {
  return nullptr;
}

}  // namespace lt
