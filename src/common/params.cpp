#include "src/common/params.hpp"

#include <cassert>
#include <stdexcept>

namespace lt {

int64_t ParamStore::add(const std::string& name, std::vector<int64_t> shape, bool decay) {
  assert(!allocated_ && "ParamStore::add after allocate");
  if (find(name)) throw std::logic_error("duplicate tensor name " + name);
  int64_t size = 1;
  for (int64_t d : shape) size *= d;
  views_.push_back(TensorView{name, std::move(shape), total_, size, decay});
  total_ += size;
  return views_.back().offset;
}

void ParamStore::allocate(bool with_grads) {
  values_.assign(size_t(total_), 0.f);
  if (with_grads) grads_.assign(size_t(total_), 0.f);
  allocated_ = true;
}

void ParamStore::zero_grads() {
  std::fill(grads_.begin(), grads_.end(), 0.f);
}

const TensorView* ParamStore::find(const std::string& name) const {
  for (const TensorView& view : views_)
    if (view.name == name) return &view;
  return nullptr;
}

}  // namespace lt
