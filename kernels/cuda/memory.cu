// Device memory and copies for the CUDA backend, and the scratch buffer of the ops' temporaries.
#include <atomic>
#include <cstring>
#include <mutex>

#include "kernels/cuda/ops.cuh"

namespace lt::LT_CUDA_NS {

namespace {
// The transfer ledger (kernels/backend.hpp: TransferLedger); copies may come from the loader thread too.
std::atomic<int64_t> h2d_bytes{0}, d2h_bytes{0}, syncs{0};

cudaStream_t new_non_blocking_stream() {
  cudaStream_t created = nullptr;
  check(cudaStreamCreateWithFlags(&created, cudaStreamNonBlocking), "cudaStreamCreateWithFlags");
  return created;
}
}  // namespace

cudaStream_t stream() {
  static const cudaStream_t compute = new_non_blocking_stream();
  return compute;
}

// Uploads go through pinned host memory on a copy stream of their own, ordered by events both ways:
//   compute → copy  the copy starts after the compute stream's work queued so far (which may still read the
//                   destination: an input buffer of the step before);
//   copy → compute  the compute stream's next work starts after the copy.
// The caller's array is copied into a pinned staging slot at the call (it may reuse it at once, as with
// pageable memory); a slot is reused only once its copy is done (its event). The host does not wait for the
// copy itself.
namespace {
struct StagingSlot {
  char* pinned = nullptr;
  size_t capacity = 0;
  cudaEvent_t copied = nullptr;  // the slot's last copy
  bool used = false;
};
constexpr int kStagingSlots = 4;

cudaStream_t copy_stream() {
  static const cudaStream_t copies = new_non_blocking_stream();
  return copies;
}

// The next slot of the ring, holding at least `bytes`, its last copy done.
StagingSlot& staging_slot(size_t bytes) {
  static StagingSlot slots[kStagingSlots];
  static int next = 0;
  StagingSlot& slot = slots[next];
  next = (next + 1) % kStagingSlots;
  if (!slot.copied) check(cudaEventCreateWithFlags(&slot.copied, cudaEventDisableTiming), "cudaEventCreateWithFlags");
  if (slot.used) check(cudaEventSynchronize(slot.copied), "cudaEventSynchronize");  // rarely waits: 4 slots
  if (bytes > slot.capacity) {
    if (slot.pinned) check(cudaFreeHost(slot.pinned), "cudaFreeHost");
    slot.capacity = bytes + bytes / 2;
    check(cudaHostAlloc(reinterpret_cast<void**>(&slot.pinned), slot.capacity, cudaHostAllocDefault), "cudaHostAlloc");
  }
  slot.used = true;
  return slot;
}
}  // namespace

TransferLedger transfers() {
  return {h2d_bytes.load(), d2h_bytes.load(), syncs.load()};
}

void* alloc(size_t bytes) {
  void* pointer = nullptr;
  if (cudaMalloc(&pointer, bytes > 0 ? bytes : 1) != cudaSuccess) {
    cudaGetLastError();  // out of memory is the caller's to report (with the step and size); clear it
    return nullptr;
  }
  return pointer;
}

void release(void* pointer) {
  if (pointer) check(cudaFree(pointer), "cudaFree");
}

void upload(void* dst, const void* host_src, size_t bytes) {
  if (!bytes) return;
  static std::mutex lock;  // the ring is shared
  const std::lock_guard<std::mutex> guard(lock);
  h2d_bytes += int64_t(bytes);
  static const cudaEvent_t compute_so_far = [] {
    cudaEvent_t created = nullptr;
    check(cudaEventCreateWithFlags(&created, cudaEventDisableTiming), "cudaEventCreateWithFlags");
    return created;
  }();
  StagingSlot& slot = staging_slot(bytes);
  std::memcpy(slot.pinned, host_src, bytes);
  check(cudaEventRecord(compute_so_far, stream()), "cudaEventRecord");
  check(cudaStreamWaitEvent(copy_stream(), compute_so_far, 0), "cudaStreamWaitEvent");
  check(cudaMemcpyAsync(dst, slot.pinned, bytes, cudaMemcpyHostToDevice, copy_stream()), "cudaMemcpyAsync to device");
  check(cudaEventRecord(slot.copied, copy_stream()), "cudaEventRecord");
  check(cudaStreamWaitEvent(stream(), slot.copied, 0), "cudaStreamWaitEvent");
}

void download(void* host_dst, const void* src, size_t bytes) {
  if (!bytes) return;
  d2h_bytes += int64_t(bytes);
  ++syncs;  // the host has the data only once the device is done
  check(cudaMemcpyAsync(host_dst, src, bytes, cudaMemcpyDeviceToHost, stream()), "cudaMemcpyAsync to host");
  check(cudaStreamSynchronize(stream()), "cudaStreamSynchronize");
}

void copy(void* dst, const void* src, size_t bytes) {
  if (bytes)
    check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream()), "cudaMemcpyAsync on the device");
}

void fill_zero(void* pointer, size_t bytes) {
  if (bytes) check(cudaMemsetAsync(pointer, 0, bytes, stream()), "cudaMemsetAsync");
}

void synchronize() {
  ++syncs;
  check(cudaStreamSynchronize(stream()), "cudaStreamSynchronize");
}

void* scratch(int slot, size_t bytes) {
  static void* buffers[kScratchSlots] = {};
  static size_t capacities[kScratchSlots] = {};
  void*& buffer = buffers[slot];
  size_t& capacity = capacities[slot];
  if (bytes > capacity) {
    release(buffer);  // cudaFree waits for the work that used it
    capacity = bytes * 2;
    buffer = alloc(capacity);
    if (!buffer) {
      std::fprintf(stderr, "lidartrain: CUDA out of memory: %zu bytes of scratch for an op\n", capacity);
      std::abort();
    }
  }
  return buffer;
}

}  // namespace lt::LT_CUDA_NS
