#pragma once
// Parameters and gradients live in one flat buffer each (what the all-reduce, the fused optimizer and
// the checkpoint work on), with named views in PyTorch's names and layouts ("bev.enc1.0.conv.weight",
// conv weights (out, in, k, k), linear (out, in), BN weight/bias/running_mean/running_var), so a
// checkpoint loads into an equivalent torch.nn.Module by name.
//
// Layers register their tensors first (add), then the store is allocated once; a layer keeps the
// offset of each tensor, never a pointer, so nothing dangles.
#include <cstdint>
#include <string>
#include <vector>

namespace lt {

struct TensorView {
  std::string name;
  std::vector<int64_t> shape;
  int64_t offset = 0;
  int64_t size = 0;
  bool decay = true;  // weight decay applies (not to BN parameters and biases)
};

class ParamStore {
 public:
  // Registers a tensor; returns its offset. Only before allocate().
  int64_t add(const std::string& name, std::vector<int64_t> shape, bool decay = true);
  void allocate(bool with_grads);

  float* value(int64_t offset) { return values_.data() + offset; }
  const float* value(int64_t offset) const { return values_.data() + offset; }
  float* grad(int64_t offset) { return grads_.data() + offset; }
  void zero_grads();

  const std::vector<TensorView>& views() const { return views_; }
  const TensorView* find(const std::string& name) const;
  std::vector<float>& values() { return values_; }
  const std::vector<float>& values() const { return values_; }
  std::vector<float>& grads() { return grads_; }
  int64_t size() const { return total_; }

 private:
  std::vector<TensorView> views_;
  std::vector<float> values_, grads_;
  int64_t total_ = 0;
  bool allocated_ = false;
};

}  // namespace lt
