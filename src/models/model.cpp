#include "src/models/model.hpp"

#include <stdexcept>
#include <vector>

namespace lt {

double Model::forward_loss(std::unique_ptr<ModelInput> input, double normaliser) {
  loss_share_.resize(be(), 1);
  be().fill_zero(loss_share_.data(), sizeof(double));
  forward_loss_on(std::move(input), normaliser, loss_share_.data());
  double share = 0;
  be().download(&share, loss_share_.data(), sizeof share);
  return share;
}

const DeviceParams& Model::begin_forward() {
  if (backend_->host_memory) {
    device_params_ = host_params(params_, buffers_);
    return device_params_;
  }
  const Backend& b = *backend_;
  if ((frozen_ || resident_) && uploaded_) return device_params_;
  device_values_.upload(b, params_.values());
  device_buffers_.upload(b, buffers_.values());
  uploaded_ = true;
  // Resident training starts from zero gradients on the device (zero_grads keeps them so).
  if (resident_ || device_grads_.size() != params_.values().size()) device_grads_.zeros(b, params_.values().size());
  device_params_ = {&b, device_values_.data(), device_grads_.data(), device_buffers_.data()};
  return device_params_;
}

void Model::end_forward(bool training) {
  if (training && frozen_) throw std::logic_error("a training forward of a model frozen for inference");
  if (backend_->host_memory || !training || resident_) return;
  device_buffers_.download(buffers_.values().data());
}

void Model::end_backward() {
  if (backend_->host_memory) return;
  if (resident_) {  // the gradients stay where they are, all final now
    if (grads_ready_) grads_ready_(0);
    return;
  }
  const std::vector<float> grads = device_grads_.to_host();
  std::vector<float>& host = params_.grads();
  for (size_t i = 0; i < host.size(); ++i) host[i] += grads[i];
  device_grads_.zeros(*backend_, host.size());
  if (grads_ready_) grads_ready_(0);
}

void Model::run_graphed(GraphedSection& section, std::vector<uintptr_t> shape, const std::function<void()>& body) {
  if (!graphs_) {
    ++graph_counts_.eager;
    body();
    return;
  }
  const Backend& b = *backend_;
  // What this rank can do: replay its graph (same shape, buffers and scratch where they were at capture),
  // capture one (the shape's second run), or run eagerly (a new shape's warm-up, which sizes the buffers
  // and the ops' scratch); with an agreement, what every rank can.
  enum Plan : int { kEager = 0, kCapture = 1, kReplay = 2 };
  const bool new_shape = section.epoch != graph_epoch_ || section.shape != shape;
  Plan plan = new_shape ? kEager : kCapture;
  if (section.graph) {
    std::vector<uintptr_t> now = shape;
    list_dense_buffers(now);
    if (!new_shape && now == section.captured && b.graph_launchable(section.graph)) plan = kReplay;
  }
  if (agree_graphs_) plan = Plan(agree_graphs_(plan));
  if (plan == kReplay) {
    if (!b.graph_launch(section.graph)) throw std::logic_error("a graph refused although launchable");
    ++graph_counts_.replayed;
    return;
  }
  if (section.graph) {  // another shape, moved buffers, the backend's scratch moved, or another rank's did
    b.graph_release(section.graph);
    section.graph = nullptr;
  }
  if (new_shape) section.epoch = graph_epoch_, section.shape = shape;
  if (plan == kEager) {
    ++graph_counts_.eager;
    body();
    return;
  }
  section.backend = &b;
  b.graph_begin();
  body();
  section.graph = b.graph_end();
  section.captured = std::move(shape);
  list_dense_buffers(section.captured);
  ++graph_counts_.captured;
  // Nothing can move between the capture and this launch (scratch cannot grow during a capture).
  if (!b.graph_launch(section.graph)) throw std::logic_error("a graph refused right after its capture");
}

void Model::zero_grads() {
  params_.zero_grads();
  if (resident_ && uploaded_) backend_->fill_zero(device_grads_.data(), sizeof(float) * device_grads_.size());
}

void Model::pull_to_host(unsigned stores) {
  if (!resident_ || !uploaded_) return;
  if (stores & kValues) device_values_.download(params_.values().data());
  if (stores & kBuffers) device_buffers_.download(buffers_.values().data());
  if (stores & kGrads) device_grads_.download(params_.grads().data());
}

void Model::push_to_device(unsigned stores) {
  if (!resident_ || !uploaded_) return;
  const Backend& b = *backend_;
  if (stores & kValues)
    b.upload(device_values_.data(), params_.values().data(), sizeof(float) * params_.values().size());
  if (stores & kBuffers)
    b.upload(device_buffers_.data(), buffers_.values().data(), sizeof(float) * buffers_.values().size());
  if (stores & kGrads) b.upload(device_grads_.data(), params_.grads().data(), sizeof(float) * params_.grads().size());
}

}  // namespace lt
