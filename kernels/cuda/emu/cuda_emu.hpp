#pragma once
// The CUDA emulation layer: lets a plain C++ compiler build kernels/cuda/*.cu and run every kernel on
// the CPU, so CI executes the same kernel source it compiles with nvcc and compares it with the CPU
// reference in the op table (tests/test_ops.cpp). Included instead of <cuda_runtime.h> by
// kernels/cuda/runtime.cuh when __CUDACC__ is not defined.
//
// What it provides:
// - the qualifiers (__global__, __device__, __host__, __forceinline__), dim3, threadIdx/blockIdx/
//   blockDim/gridDim;
// - LT_LAUNCH(kernel, grid, block, stream)(args…) in place of kernel<<<grid, block, 0, stream>>>(args…);
// - __syncthreads() and __shared__, for real: a block's threads run as fibers on one OS thread, each
//   until it reaches the barrier or returns, then the next; the blocks of a grid run one after another,
//   so a block's threads share function-static storage (that is what __shared__ becomes). A barrier that
//   some threads of a block skip (divergent __syncthreads, undefined in CUDA) aborts with a message. A
//   kernel whose first block reached no barrier runs the rest of the grid, and later launches, as plain
//   calls (no fibers);
// - atomics (atomicAdd, atomicMax, atomicMin, atomicCAS, atomicExch) on int, unsigned, unsigned long
//   long, float and double: plain read-modify-writes, since only one thread runs at a time;
// - __float_as_int and friends, and the runtime calls the kernels' host code makes (cudaMalloc, cudaFree,
//   cudaMemcpy, cudaMemset, cudaGetLastError, cudaDeviceSynchronize…) on host memory, with streams, events
//   and pinned host memory whose ordering is adversarial (below, and runtime.cpp).
//
// What it cannot show: timing and occupancy; warp-synchronous behaviour (warp shuffles and votes are not
// provided: kernels reduce through __shared__ memory and __syncthreads instead); races that the sequential
// schedule hides (two threads writing one address without an atomic give the last writer's value here).
// To expose order dependence, set_thread_order(reverse) runs each block's threads, and the blocks of a
// grid, in reverse; the op table runs every kernel both ways and requires the same bits.
// Not provided, so a kernel must avoid it: dynamic (extern) shared memory, warp intrinsics, textures,
// cooperative groups, printf from device code.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <vector>

#include "kernels/cuda/emu/emulated.hpp"

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __restrict__
// One block runs at a time, so function-static storage is exactly one block's shared memory.
#define __shared__ static

struct uint3 {
  unsigned x, y, z;
};
struct dim3 {
  unsigned x = 1, y = 1, z = 1;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

using cudaStream_t = struct CUstream_emu*;

namespace lt::emu {

// Queues `work` on `stream` (the null stream: runs it now, after the blocking streams' queued work;
// kernels/cuda/emu/runtime.cpp). On a stream being captured (cudaStreamBeginCapture) the work becomes a
// node of the graph instead, with `uses`: the pointers it reads or writes, which a replay checks are
// still the allocations they were at capture (`what` names the node in that check's message).
void submit(cudaStream_t stream, std::function<void()> work, std::vector<const void*> uses = {},
            const char* what = "a copy");
// Whether `stream` is being captured (what makes a launch list its pointer arguments).
bool capturing(cudaStream_t stream);
// On a stream being captured: a node of the graph that each launch does by calling `call` again, on the
// host, with the launch's stream, at the node's turn (the nodes before it queued on that stream first, the
// ones after it once the call returns) — what the emulated NCCL records for a collective, which must start
// in call order on every rank (mpi/nccl_emu.hpp). `uses` and `what` as submit's. False, and nothing
// recorded, when `stream` is not being captured.
bool record_call(cudaStream_t stream, std::function<void(cudaStream_t)> call, std::vector<const void*> uses,
                 const char* what);
// A caching allocator's block of device memory handed out (in_use) or taken back: a graph that captured a
// pointer into a block that went back to the cache, or that the cache handed out again, reads memory that
// is no longer its own although no cudaFree happened, and cudaGraphLaunch says so (kernels/buffer.hpp's
// PoolObserver; the emulated backend installs it).
void note_pool_block(const void* block, size_t bytes, bool in_use);

// A launch's pointer arguments, for a capture's record of what the kernel touches.
template <class T>
void add_use(std::vector<const void*>& uses, T* pointer) {
  uses.push_back(pointer);
}
template <class T>
void add_use(std::vector<const void*>&, const T&) {}

// The indices of the thread that runs now.
struct ThreadState {
  uint3 thread_idx{0, 0, 0}, block_idx{0, 0, 0};
  dim3 block_dim, grid_dim;
};
extern ThreadState current;

void syncthreads();
// Runs body once per thread of the grid, with the indices set. `kernel` identifies the kernel: one whose
// first block reached no __syncthreads runs its other blocks and later launches without fibers (each
// thread a plain call, in the same order), which is much faster; should such a block reach a barrier
// after all, it aborts.
void run_grid(dim3 grid, dim3 block, const void* kernel, const std::function<void()>& body);

// A launch is queued on its stream with copies of its arguments, as CUDA takes them.
template <class Kernel>
struct Launch {
  dim3 grid, block;
  Kernel* kernel;
  cudaStream_t stream;
  template <class... Args>
  void operator()(Args... args) const {
    std::vector<const void*> uses;
    if (capturing(stream)) (add_use(uses, args), ...);
    submit(
        stream,
        [grid = grid, block = block, kernel = kernel, args...] {
          run_grid(grid, block, reinterpret_cast<const void*>(kernel), [&] { kernel(args...); });
        },
        std::move(uses), "a kernel");
  }
};
template <class Kernel>
Launch<Kernel> launch(dim3 grid, dim3 block, Kernel* kernel, cudaStream_t stream) {
  return {grid, block, kernel, stream};
}
inline dim3 to_dim3(dim3 d) {
  return d;
}
inline dim3 to_dim3(int64_t x) {
  return dim3(unsigned(x));
}

}  // namespace lt::emu

#define threadIdx (::lt::emu::current.thread_idx)
#define blockIdx (::lt::emu::current.block_idx)
#define blockDim (::lt::emu::current.block_dim)
#define gridDim (::lt::emu::current.grid_dim)
#define __syncthreads() ::lt::emu::syncthreads()
#define LT_LAUNCH(kernel, grid, block, stream) \
  ::lt::emu::launch(::lt::emu::to_dim3(grid), ::lt::emu::to_dim3(block), &kernel, (stream))

// ---- bit casts ------------------------------------------------------------------------------------
inline int __float_as_int(float f) {
  int i;
  std::memcpy(&i, &f, sizeof i);
  return i;
}
inline unsigned __float_as_uint(float f) {
  unsigned u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}
inline float __int_as_float(int i) {
  float f;
  std::memcpy(&f, &i, sizeof f);
  return f;
}
inline float __uint_as_float(unsigned u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

// ---- atomics: one thread runs at a time, so a read-modify-write is atomic -------------------------
template <class T>
T atomicAdd(T* address, T value) {
  const T old = *address;
  *address = old + value;
  return old;
}
template <class T>
T atomicMax(T* address, T value) {
  const T old = *address;
  *address = old < value ? value : old;
  return old;
}
template <class T>
T atomicMin(T* address, T value) {
  const T old = *address;
  *address = value < old ? value : old;
  return old;
}
template <class T>
T atomicCAS(T* address, T compare, T value) {
  const T old = *address;
  if (old == compare) *address = value;
  return old;
}
template <class T>
T atomicExch(T* address, T value) {
  const T old = *address;
  *address = value;
  return old;
}

// ---- the runtime subset, on host memory (kernels/cuda/emu/runtime.cpp) -------------------------------
// Streams are queues that run their work as late as they may (see runtime.cpp): on the legacy null stream
// (stream 0) work runs at once, after every blocking stream's queued work, as CUDA orders it; on a stream
// of one's own it waits until something needs it done (a synchronisation, an event, a copy to pageable
// memory, a null-stream call for a blocking stream, cudaFree). A missing event wait then leaves a kernel
// reading what an unfinished copy or kernel of another stream has not written yet.
enum cudaError_t {
  cudaSuccess = 0,
  cudaErrorMemoryAllocation = 2,
  cudaErrorInvalidValue = 1,
  cudaErrorInvalidDevice = 101,
  cudaErrorNotReady = 600,
  cudaErrorIllegalState = 401,
  cudaErrorIllegalAddress = 700,
  cudaErrorStreamCaptureUnsupported = 900,
  cudaErrorStreamCaptureInvalidated = 901,
  cudaErrorStreamCaptureUnmatched = 902,
  cudaErrorStreamCaptureUnjoined = 904,
  cudaErrorStreamCaptureIsolation = 905
};
enum cudaMemcpyKind {
  cudaMemcpyHostToHost = 0,
  cudaMemcpyHostToDevice = 1,
  cudaMemcpyDeviceToHost = 2,
  cudaMemcpyDeviceToDevice = 3,
  cudaMemcpyDefault = 4
};
using cudaEvent_t = struct CUevent_emu*;
constexpr unsigned cudaStreamDefault = 0, cudaStreamNonBlocking = 1;
constexpr unsigned cudaEventDefault = 0, cudaEventBlockingSync = 1, cudaEventDisableTiming = 2;
constexpr unsigned cudaHostAllocDefault = 0;

cudaError_t cudaMalloc(void** pointer, size_t bytes);
template <class T>
cudaError_t cudaMalloc(T** pointer, size_t bytes) {
  return cudaMalloc(reinterpret_cast<void**>(pointer), bytes);
}
cudaError_t cudaFree(void* pointer);
// Pinned (page-locked) host memory: asynchronous copies to and from it run in stream order, at the copy's
// turn; to and from pageable memory the host waits (device to host) or the source is staged at the call
// (host to device), as CUDA does.
cudaError_t cudaHostAlloc(void** pointer, size_t bytes, unsigned flags);
// The calling thread's current device, as CUDA keeps it per host thread (a thread starts on device 0). The
// emulated devices share the host's memory, so it selects nothing else; tests read it back.
cudaError_t cudaSetDevice(int device);
cudaError_t cudaGetDevice(int* device);
cudaError_t cudaMallocHost(void** pointer, size_t bytes);
cudaError_t cudaFreeHost(void* pointer);
cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind);
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind,
                            cudaStream_t stream = nullptr);
cudaError_t cudaMemset(void* pointer, int value, size_t bytes);
cudaError_t cudaMemsetAsync(void* pointer, int value, size_t bytes, cudaStream_t stream = nullptr);
cudaError_t cudaStreamCreate(cudaStream_t* stream);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned flags);
cudaError_t cudaStreamDestroy(cudaStream_t stream);
cudaError_t cudaStreamSynchronize(cudaStream_t stream);
cudaError_t cudaStreamQuery(cudaStream_t stream);
cudaError_t cudaStreamWaitEvent(cudaStream_t stream, cudaEvent_t event, unsigned flags = 0);
cudaError_t cudaEventCreate(cudaEvent_t* event);
cudaError_t cudaEventCreateWithFlags(cudaEvent_t* event, unsigned flags);
cudaError_t cudaEventDestroy(cudaEvent_t event);
cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream = nullptr);
cudaError_t cudaEventQuery(cudaEvent_t event);
cudaError_t cudaEventSynchronize(cudaEvent_t event);
// Milliseconds between the two events' completions on the host's clock (the emulation has no GPU time).
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end);
// `fn(data)` on the host at its turn in the stream (CUDA runs it on a thread of its own; here the thread
// that runs the stream's work).
using cudaHostFn_t = void (*)(void*);
cudaError_t cudaLaunchHostFunc(cudaStream_t stream, cudaHostFn_t fn, void* data);
// Stream capture and graphs (CUDA graphs). Between cudaStreamBeginCapture and cudaStreamEndCapture the
// work queued on the stream is recorded, not run; cudaGraphLaunch queues the recorded work again, with the
// arguments it had at capture. As on a GPU, a capture is invalidated by what cannot be part of a graph:
// cudaMalloc, cudaFree or a synchronisation on the capturing thread (thread-local mode), a copy to or from
// pageable host memory, a wait for an event recorded outside the capture, or a wait on an event recorded in
// it by a stream outside it (the call returns the error, and cudaStreamEndCapture returns
// cudaErrorStreamCaptureInvalidated). Another stream joins a capture by waiting for an event recorded in
// it (the fork of a fork-join: its work from then on is captured too) and must be joined back — some stream
// of the capture waits for an event it recorded after its last work — before the capture ends, else
// cudaStreamEndCapture returns cudaErrorStreamCaptureUnjoined; the graph keeps the work of all its streams
// in the order it was queued (a valid order of the fork-join's dependencies), and a launch queues it all on
// the launch's stream. Where a GPU would silently read freed memory, the emulation checks:
// every pointer a node used at capture must, at each launch, still lie in the very allocation it lay in
// then (not freed, not freed and allocated again at the same address); else cudaGraphLaunch runs nothing
// and returns cudaErrorIllegalAddress, and cudaGetErrorString names the node and the pointer.
enum cudaStreamCaptureMode {
  cudaStreamCaptureModeGlobal = 0,
  cudaStreamCaptureModeThreadLocal = 1,
  cudaStreamCaptureModeRelaxed = 2
};
enum cudaStreamCaptureStatus { cudaStreamCaptureStatusNone = 0, cudaStreamCaptureStatusActive = 1 };
using cudaGraph_t = struct CUgraph_emu*;
using cudaGraphExec_t = struct CUgraphExec_emu*;
cudaError_t cudaStreamBeginCapture(cudaStream_t stream, cudaStreamCaptureMode mode);
cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t* graph);
cudaError_t cudaStreamIsCapturing(cudaStream_t stream, cudaStreamCaptureStatus* status);
cudaError_t cudaGraphInstantiate(cudaGraphExec_t* exec, cudaGraph_t graph, unsigned long long flags = 0);
cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t stream);
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec);
cudaError_t cudaGraphDestroy(cudaGraph_t graph);
cudaError_t cudaGetLastError();
cudaError_t cudaDeviceSynchronize();
const char* cudaGetErrorString(cudaError_t status);

// The 16-bit float types and their conversions (uses the bit casts above).
#include "kernels/cuda/emu/half_types.hpp"  // IWYU pragma: export
