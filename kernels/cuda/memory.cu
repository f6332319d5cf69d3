// Device memory and copies for the CUDA backend, and the scratch buffer of the ops' temporaries.
#include <atomic>
#include <cstring>
#include <deque>
#include <mutex>

#include "kernels/buffer.hpp"
#include "kernels/cuda/ops.cuh"

namespace lt::LT_CUDA_NS {

namespace {
// The transfer ledger (kernels/backend.hpp: TransferLedger); copies may come from the loader thread too.
std::atomic<int64_t> h2d_bytes{0}, d2h_bytes{0}, syncs{0};
// Host waits for the compute stream that have returned (counted after the wait, unlike `syncs`): work the
// compute stream queued before the n-th is done once this passes n.
std::atomic<int64_t> compute_syncs_done{0};

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
  ++compute_syncs_done;
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
  ++compute_syncs_done;
}

// Staging slots for inputs uploaded ahead (kernels/backend.hpp: stage_*). Each slot's pinned block is
// filled by the loader thread and read by one copy on the copy stream; its device block is written by that
// copy and read by the compute stream. The orderings:
//   host fill → copy        the copy is queued (stage_upload) after the fill returned;
//   copy → compute          stage_await: the compute stream waits for the copy's event;
//   copy → next host fill   stage_release makes the compute stream wait for the copy; the loader takes the
//                           slot again only once a host wait for the compute stream has returned after that
//                           (the copy is done then), so it never calls the device itself (a query or wait on
//                           its thread could run other streams' work);
//   compute → next copy     the next copy into the device block waits for the event stage_release recorded
//                           after the work reading it (implied by the rule above, and stated on its own).
namespace {
std::atomic<int> rank_device{0};

// CUDA calls go to the calling thread's current device, 0 unless it set one, and make a context there: the
// loader thread of every rank of an 8-GPU node would put one on GPU 0 (as PyTorch's pin-memory thread once
// did). A thread selects the rank's device before its first call.
void select_rank_device_on_this_thread() {
  thread_local int selected = -1;
  const int device = rank_device.load();
  if (selected != device) check(cudaSetDevice(device), "cudaSetDevice"), selected = device;
}

struct InputSlot {
  char* host = nullptr;
  size_t host_capacity = 0;
  void* device = nullptr;
  size_t device_capacity = 0;
  size_t bytes = 0;
  cudaEvent_t copied = nullptr, released = nullptr;
  bool in_use = false, copy_queued = false, counted = false, release_recorded = false;
  int64_t free_after_sync = -1;  // the host block is free once compute_syncs_done passes this
};
std::mutex slots_lock;
std::deque<InputSlot>& input_slots() {  // a deque: slots keep their address as it grows
  static auto* slots = new std::deque<InputSlot>;
  return *slots;
}
}  // namespace

void select_device(int index) {
  check(cudaSetDevice(index), "cudaSetDevice");
  rank_device = index;
}

void* stage_acquire(size_t bytes, char** host_block) {
  select_rank_device_on_this_thread();
  const std::lock_guard<std::mutex> guard(slots_lock);
  const int64_t synced = compute_syncs_done.load();
  InputSlot* chosen = nullptr;
  for (InputSlot& slot : input_slots())
    if (!slot.in_use && slot.free_after_sync < synced && slot.host_capacity >= bytes &&
        (!chosen || slot.host_capacity < chosen->host_capacity))
      chosen = &slot;  // the smallest that fits
  if (!chosen) {       // a new slot (those too small stay for smaller inputs)
    chosen = &input_slots().emplace_back();
    chosen->host_capacity = bytes + bytes / 4 + 4096;
    check(cudaHostAlloc(reinterpret_cast<void**>(&chosen->host), chosen->host_capacity, cudaHostAllocDefault),
          "cudaHostAlloc");
  }
  chosen->in_use = true;
  chosen->copy_queued = chosen->counted = false;
  chosen->bytes = bytes;
  *host_block = chosen->host;
  return chosen;
}

const void* stage_upload(void* handle) {
  InputSlot& slot = *static_cast<InputSlot*>(handle);
  if (slot.bytes > slot.device_capacity) {
    if (slot.device) check(cudaFree(slot.device), "cudaFree");  // waits for the work that read it
    slot.device_capacity = slot.bytes + slot.bytes / 4 + 4096;
    if (cudaMalloc(&slot.device, slot.device_capacity) != cudaSuccess) {
      cudaGetLastError();
      slot.device = nullptr, slot.device_capacity = 0;
      throw OutOfDeviceMemory{backend().name, slot.bytes, pool_stats(backend()).in_use_bytes};
    }
    slot.release_recorded = false;  // new memory: nothing reads it
  }
  if (!slot.copied) {
    check(cudaEventCreateWithFlags(&slot.copied, cudaEventDisableTiming), "cudaEventCreateWithFlags");
    check(cudaEventCreateWithFlags(&slot.released, cudaEventDisableTiming), "cudaEventCreateWithFlags");
  }
  if (slot.bytes) {
    if (slot.release_recorded) check(cudaStreamWaitEvent(copy_stream(), slot.released, 0), "cudaStreamWaitEvent");
    check(cudaMemcpyAsync(slot.device, slot.host, slot.bytes, cudaMemcpyHostToDevice, copy_stream()),
          "cudaMemcpyAsync to device");
  }
  check(cudaEventRecord(slot.copied, copy_stream()), "cudaEventRecord");
  slot.copy_queued = true;
  return slot.device;
}

namespace {
// The ledger counts a staged input at the forward that reads it (the step it belongs to), wherever its
// copy was queued.
void count_staged(InputSlot& slot) {
  if (slot.copy_queued && !slot.counted) h2d_bytes += int64_t(slot.bytes), slot.counted = true;
}
}  // namespace

void stage_await(void* handle) {
  InputSlot& slot = *static_cast<InputSlot*>(handle);
  check(cudaStreamWaitEvent(stream(), slot.copied, 0), "cudaStreamWaitEvent");
  count_staged(slot);
}

void stage_release(void* handle) {
  InputSlot& slot = *static_cast<InputSlot*>(handle);
  int64_t free_after = -1;
  if (slot.copy_queued) {
    count_staged(slot);
    // After the copy too (a slot uploaded but never awaited), so the next host wait covers it.
    check(cudaStreamWaitEvent(stream(), slot.copied, 0), "cudaStreamWaitEvent");
    check(cudaEventRecord(slot.released, stream()), "cudaEventRecord");
    slot.release_recorded = true;
    free_after = syncs.load();  // a host wait counted from now on returns after the copy
  }
  const std::lock_guard<std::mutex> guard(slots_lock);
  slot.free_after_sync = free_after;
  slot.in_use = false;
}

namespace {
// Times a scratch slot moved to new memory: a graph captured before reads the old (graph_launch).
std::atomic<uint64_t> scratch_moves{0};

struct Graph {
  cudaGraphExec_t exec = nullptr;
  uint64_t scratch_moves_at_capture = 0;
};
}  // namespace

void graph_begin() {
  // Thread-local: the loader thread's pinned allocations stay legal while the main thread captures.
  check(cudaStreamBeginCapture(stream(), cudaStreamCaptureModeThreadLocal), "cudaStreamBeginCapture");
}

void* graph_end() {
  cudaGraph_t graph = nullptr;
  check(cudaStreamEndCapture(stream(), &graph), "cudaStreamEndCapture");
  auto* captured = new Graph;
  check(cudaGraphInstantiate(&captured->exec, graph, 0), "cudaGraphInstantiate");
  check(cudaGraphDestroy(graph), "cudaGraphDestroy");
  captured->scratch_moves_at_capture = scratch_moves.load();
  return captured;
}

bool graph_launchable(const void* handle) {
  return static_cast<const Graph*>(handle)->scratch_moves_at_capture == scratch_moves.load();
}

bool graph_launch(void* handle) {
  const Graph& graph = *static_cast<const Graph*>(handle);
  if (!graph_launchable(handle)) return false;
  check(cudaGraphLaunch(graph.exec, stream()), "cudaGraphLaunch");
  return true;
}

void graph_release(void* handle) {
  auto* graph = static_cast<Graph*>(handle);
  if (!graph) return;
  check(cudaGraphExecDestroy(graph->exec), "cudaGraphExecDestroy");
  delete graph;
}

void* scratch(int slot, size_t bytes) {
  static void* buffers[kScratchSlots] = {};
  static size_t capacities[kScratchSlots] = {};
  void*& buffer = buffers[slot];
  size_t& capacity = capacities[slot];
  if (bytes > capacity) {
    release(buffer);  // cudaFree waits for the work that used it
    ++scratch_moves;
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
