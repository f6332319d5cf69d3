// Device memory and copies for the CUDA backend, and the scratch buffer of the ops' temporaries.
#include <atomic>

#include "kernels/cuda/ops.cuh"

namespace lt::LT_CUDA_NS {

namespace {
// The transfer ledger (kernels/backend.hpp: TransferLedger); copies may come from the loader thread too.
std::atomic<int64_t> h2d_bytes{0}, d2h_bytes{0}, syncs{0};
}  // namespace

cudaStream_t stream() {
  static const cudaStream_t compute = [] {
    cudaStream_t created = nullptr;
    check(cudaStreamCreateWithFlags(&created, cudaStreamNonBlocking), "cudaStreamCreateWithFlags");
    return created;
  }();
  return compute;
}

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
  h2d_bytes += int64_t(bytes);
  // From pageable memory the source is staged at the call: the caller may reuse it at once.
  check(cudaMemcpyAsync(dst, host_src, bytes, cudaMemcpyHostToDevice, stream()), "cudaMemcpyAsync to device");
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
