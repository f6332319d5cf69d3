#pragma once
// One prepared input's arrays on their way to a backend whose memory is not the host's, ahead of the
// forward that reads them (DESIGN.md §6, kernels/backend.hpp: stage_*):
//   1. the loader thread copies the arrays into the pinned host block of a staging slot (the constructor);
//   2. the trainer queues that block's one copy to the device on the copy stream while the step before
//      computes (upload; forward does it when nobody did);
//   3. forward makes the compute stream wait for the copy and reads each array where it landed (array);
//   4. destroyed once the work reading it is queued (the model keeps it until its next input): the slot
//      goes back, and its next copy waits for that work.
#include <cstddef>
#include <cstring>
#include <vector>

#include "kernels/backend.hpp"

namespace lt {

struct HostArray {
  const void* data;
  size_t bytes;
};

class StagedInput {
 public:
  StagedInput(const Backend& backend, const std::vector<HostArray>& arrays) : backend_(backend) {
    size_t bytes = 0;
    for (const HostArray& a : arrays) {
      offsets_.push_back(bytes);
      bytes += (a.bytes + kAlign - 1) / kAlign * kAlign;  // each array aligned for any element type
    }
    char* block = nullptr;
    slot_ = backend_.stage_acquire(bytes > 0 ? bytes : kAlign, &block);  // never empty: a device block to point at
    for (size_t i = 0; i < arrays.size(); ++i)
      if (arrays[i].bytes) std::memcpy(block + offsets_[i], arrays[i].data, arrays[i].bytes);
  }
  ~StagedInput() { backend_.stage_release(slot_); }
  StagedInput(const StagedInput&) = delete;
  StagedInput& operator=(const StagedInput&) = delete;

  // Queues the copy (once); the host does not wait.
  void upload() {
    if (!device_) device_ = static_cast<const char*>(backend_.stage_upload(slot_));
  }

  // Array i in the backend's memory; the first call orders the compute stream after the copy.
  template <class T>
  const T* array(size_t i) {
    upload();
    if (!awaited_) backend_.stage_await(slot_), awaited_ = true;
    return reinterpret_cast<const T*>(device_ + offsets_[i]);
  }

 private:
  static constexpr size_t kAlign = 256;
  const Backend& backend_;
  void* slot_ = nullptr;
  std::vector<size_t> offsets_;
  const char* device_ = nullptr;
  bool awaited_ = false;
};

}  // namespace lt
