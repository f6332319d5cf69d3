#pragma once
// The gradient all-reduce in buckets, overlapped with backward (DESIGN.md §7; PyTorch DDP's Reducer,
// Horovod's tensor fusion).
//
// Invariants:
//   - The flat gradient buffer is cut at tensor boundaries into buckets of about `bucket_bytes`, from its
//     end: parameters are declared in forward order, so backward finishes them last-to-first and bucket 0
//     (the buffer's tail) is complete first.
//   - Backward calls grads_ready(offset) after each layer: every gradient at or above `offset` is final.
//     Each bucket lying wholly above it is posted then, so every rank posts the same buckets in the same
//     order (the layer sequence is the same on every rank).
//   - Each call also tests the posted buckets, which is what drives their progress while backward
//     computes (on the host: a device's sums progress by themselves, and are not tested). The optimizer starts once
//     every bucket has arrived (wait_all): gradient clipping and the non-finite guard need the global gradient norm,
//     which needs every bucket. On a device (nccl) the buffer is the device's and wait_all orders the compute stream
//     after every bucket: the host does not wait for them; it reads the gradient norm, queued after them.
#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "mpi/reduce_backend.hpp"

namespace lt {

struct GradBucket {
  int64_t begin = 0, end = 0;  // [begin, end) of the flat buffer
  // Of the last step, seconds on the caller's clock: when posted, and when first seen complete.
  double posted_s = -1, done_s = -1;
};

class GradientBuckets {
 public:
  // `tensor_starts`: offset of each tensor in the flat buffer (ascending); `total`: buffer size.
  GradientBuckets(ReduceBackend& backend, const std::vector<int64_t>& tensor_starts, int64_t total,
                  int64_t bucket_bytes);

  // A new step over `grads` (the buffer the sums go to, in place).
  void begin_step(float* grads);
  // Gradients at offsets >= first_final are final: posts what is ready, tests what is in flight.
  void grads_ready(int64_t first_final);
  // Waits for bucket `index` (posting any bucket not yet posted: grads_ready(0) is implied).
  void wait(int index);
  void wait_all();

  const std::vector<GradBucket>& buckets() const { return buckets_; }
  // Seconds spent inside wait() this step: the all-reduce time backward did not hide (on the host; with
  // nccl the host does not wait there).
  double wait_s() const { return wait_s_; }
  // From any thread (the watchdog's): the bucket this step waits for — "bucket 3 of 5 (2.10 MB)" — or ""
  // when every posted bucket has arrived.
  std::string pending() const;

 private:
  void post_ready(int64_t first_final);
  ReduceBackend& backend_;
  std::vector<GradBucket> buckets_;
  std::vector<ReduceBackend::Handle> handles_;
  float* grads_ = nullptr;
  std::atomic<int> posted_{0};
  std::atomic<int64_t> finished_before_{0};  // the backend's finished_sums() when this step began
  double wait_s_ = 0;
};

}  // namespace lt
