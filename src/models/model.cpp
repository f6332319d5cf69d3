#include "src/models/model.hpp"

#include <stdexcept>
#include <vector>

namespace lt {

const DeviceParams& Model::begin_forward() {
  if (backend_->host_memory) {
    device_params_ = host_params(params_, buffers_);
    return device_params_;
  }
  const Backend& b = *backend_;
  if (frozen_ && uploaded_) return device_params_;
  device_values_.upload(b, params_.values());
  device_buffers_.upload(b, buffers_.values());
  uploaded_ = true;
  if (device_grads_.size() != params_.values().size()) device_grads_.zeros(b, params_.values().size());
  device_params_ = {&b, device_values_.data(), device_grads_.data(), device_buffers_.data()};
  return device_params_;
}

void Model::end_forward(bool training) {
  if (training && frozen_) throw std::logic_error("a training forward of a model frozen for inference");
  if (backend_->host_memory || !training) return;
  device_buffers_.download(buffers_.values().data());
}

void Model::end_backward() {
  if (backend_->host_memory) return;
  const std::vector<float> grads = device_grads_.to_host();
  std::vector<float>& host = params_.grads();
  for (size_t i = 0; i < host.size(); ++i) host[i] += grads[i];
  device_grads_.zeros(*backend_, host.size());
  if (grads_ready_) grads_ready_(0);
}

}  // namespace lt
