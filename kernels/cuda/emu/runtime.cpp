// The emulated CUDA runtime: device memory (host memory with the device's accounting), pinned host memory,
// streams and events.
//
// Ordering. CUDA promises only what streams and events say: work of one stream runs in order; work after
// cudaStreamWaitEvent(s, e) runs after the work e recorded; the legacy null stream (0) runs after all
// earlier work of the blocking streams, and their later work after it. A GPU is free to run anything else
// in any order, and a missing dependency shows up only when the timing happens to expose it. Here each
// stream is a queue that runs as late as it may (StreamSchedule::lazy, the default): its work runs only
// when something needs it done — a synchronisation of it or of an event it recorded, a wait on such an
// event by work that runs, a copy to pageable host memory, a null-stream call (for blocking streams), or
// cudaFree/cudaFreeHost/cudaDeviceSynchronize. So a kernel that reads a buffer another stream is still
// filling, without the event wait between them, reads the old contents, every time; a test sees it.
// StreamSchedule::eager runs each piece of work when it is queued (the opposite order, for hazards the other
// way round: a copy that overwrites a buffer a queued kernel has yet to read).
//
// Copies follow CUDA's rules for pageable memory: cudaMemcpyAsync host to device stages the source at the
// call (it may be reused at once), device to host returns when the copy is done (the stream is run up to
// it). To and from pinned memory (cudaHostAlloc) the copy runs at its turn in the stream, reading or
// writing the host buffer then: a buffer refilled before the copy's event completes gives the device the
// new contents, as on a GPU.
//
// The runtime is thread-safe (one lock; the loader thread may queue copies while the main thread runs).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "kernels/cuda/emu/cuda_emu.hpp"

// A graph's node: its work, and what it used at capture — each pointer with the allocation it lay in
// (start and serial; a pointer in no device allocation is not checked).
struct GraphNode {
  struct Use {
    const void* pointer;
    const char* start;
    uint64_t serial;
    bool pool_block;  // a caching allocator's block (note_pool_block), else a cudaMalloc allocation
  };
  std::function<void()> run;
  std::vector<Use> uses;
  const char* what;
  // Set instead of run: a call each launch makes again (lt::emu::record_call).
  std::function<void(cudaStream_t)> call;
};
struct CUgraph_emu {
  std::vector<GraphNode> nodes;
};
struct CUgraphExec_emu {
  std::vector<GraphNode> nodes;
};

struct CUstream_emu {
  struct Work {
    std::function<void()> run;            // null for a wait
    CUstream_emu* wait_stream = nullptr;  // a wait: that stream's work up to wait_target first
    int64_t wait_target = 0;
  };
  bool blocking = true;  // ordered with the legacy null stream
  std::deque<Work> queue;
  // While captured: the graph being recorded, whether the capture is already invalid, and the capturing
  // thread (thread-local mode: its unsafe calls invalidate the capture).
  CUgraph_emu* capture = nullptr;
  bool capture_invalid = false;
  std::thread::id capture_thread;
  // A stream that joined another's capture (it waited for an event recorded in it): whether it has work in
  // the capture that no stream of the capture has waited for since, and the capture's node count after its
  // last node (an event it records from then on joins it back).
  bool joined = false, unjoined = false;
  size_t capture_end = 0;
  int64_t queued = 0, done = 0;  // pieces of work queued and run since creation
};

struct CUevent_emu {
  CUstream_emu* stream = nullptr;       // where it was last recorded (null: the null stream, or never)
  CUgraph_emu* captured_in = nullptr;   // recorded during that capture (a node of it, not run)
  CUstream_emu* captured_on = nullptr;  // by that stream of the capture,
  size_t captured_at = 0;               // when the capture had that many nodes
  int64_t target = 0;                   // complete once stream->done reaches it
  double completed_at_s = 0;            // host clock when the record ran
};

namespace lt::emu {
namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

struct Runtime {
  std::recursive_mutex lock;
  std::vector<CUstream_emu*> streams;  // in creation order
  StreamSchedule schedule = StreamSchedule::lazy;
  // Device memory: what is allocated, and the cap LIDARTRAIN_CUDA_EMULATION_MEMORY sets (bytes; none by
  // default), so that tests can run a device out of memory.
  struct Allocation {
    size_t bytes;
    uint64_t serial;  // one per cudaMalloc: the same address allocated again is another allocation
  };
  std::map<const char*, Allocation> device_allocations;  // by start
  std::map<const char*, Allocation> pool_blocks;         // handed out by a caching allocator, by start
  uint64_t allocations_made = 0;
  size_t in_use = 0, limit = 0;
  std::string graph_problem;             // what the last cudaGraphLaunch that failed found
  std::map<const char*, size_t> pinned;  // pinned host allocations: start -> bytes
  Runtime() {
    if (const char* text = std::getenv("LIDARTRAIN_CUDA_EMULATION_MEMORY"))
      limit = size_t(std::strtoull(text, nullptr, 10));
  }
};
Runtime& runtime() {
  static Runtime* r = new Runtime;  // never destroyed: streams may be released at exit
  return *r;
}

void run_until(CUstream_emu* stream, int64_t target);

// Runs the oldest queued piece of work of `stream` (its waits first).
void run_next(CUstream_emu* stream) {
  CUstream_emu::Work work = std::move(stream->queue.front());
  stream->queue.pop_front();
  if (work.wait_stream) run_until(work.wait_stream, work.wait_target);
  if (work.run) work.run();
  ++stream->done;
}

void run_until(CUstream_emu* stream, int64_t target) {
  while (stream && stream->done < target) run_next(stream);
}

// Everything queued on the streams (blocking ones only: what a null-stream call orders itself after).
void run_all(bool blocking_only) {
  for (CUstream_emu* stream : runtime().streams)
    if (!blocking_only || stream->blocking) run_until(stream, stream->queued);
}

bool is_pinned(const void* pointer) {
  const auto& pinned = runtime().pinned;
  const char* p = static_cast<const char*>(pointer);
  auto it = pinned.upper_bound(p);
  if (it == pinned.begin()) return false;
  --it;
  return p < it->first + it->second;
}

// The allocation of `all` that `pointer` lies in (end of the map: none).
std::map<const char*, Runtime::Allocation>::const_iterator allocation_of(
    const void* pointer, const std::map<const char*, Runtime::Allocation>& all = runtime().device_allocations) {
  const char* p = static_cast<const char*>(pointer);
  auto it = all.upper_bound(p);
  if (it == all.begin()) return all.end();
  --it;
  return p < it->first + it->second.bytes ? it : all.end();
}

// The capture of a stream the calling thread is capturing, if any: what cudaMalloc, cudaFree and the
// synchronisations invalidate (thread-local mode, the one the backend uses; the modes are not told apart).
CUstream_emu* capture_on_this_thread() {
  for (CUstream_emu* stream : runtime().streams)
    if (stream->capture && stream->capture_thread == std::this_thread::get_id()) return stream;
  return nullptr;
}
bool invalidates_capture() {
  CUstream_emu* stream = capture_on_this_thread();
  if (stream) stream->capture_invalid = true;
  return stream != nullptr;
}

}  // namespace

void note_pool_block(const void* block, size_t bytes, bool in_use) {
  Runtime& r = runtime();
  std::lock_guard<std::recursive_mutex> guard(r.lock);
  if (in_use)
    r.pool_blocks[static_cast<const char*>(block)] = {bytes, ++r.allocations_made};
  else
    r.pool_blocks.erase(static_cast<const char*>(block));
}

bool capturing(cudaStream_t stream) {
  if (!stream) return false;
  std::lock_guard<std::recursive_mutex> guard(runtime().lock);
  return stream->capture != nullptr;
}

void set_stream_schedule(StreamSchedule schedule) {
  std::lock_guard<std::recursive_mutex> guard(runtime().lock);
  runtime().schedule = schedule;
}

int64_t queued_work() {
  std::lock_guard<std::recursive_mutex> guard(runtime().lock);
  int64_t pending = 0;
  for (CUstream_emu* stream : runtime().streams) pending += stream->queued - stream->done;
  return pending;
}

namespace {

// `node` added to the graph `stream` is capturing, with the allocation of each pointer it uses.
void add_node(CUstream_emu* stream, GraphNode node, const std::vector<const void*>& uses) {
  Runtime& r = runtime();
  for (const void* pointer : uses) {
    const auto block = allocation_of(pointer, r.pool_blocks);
    const auto it = allocation_of(pointer);
    if (block != r.pool_blocks.end())
      node.uses.push_back({pointer, block->first, block->second.serial, true});
    else if (it != r.device_allocations.end())
      node.uses.push_back({pointer, it->first, it->second.serial, false});
  }
  stream->capture->nodes.push_back(std::move(node));
  if (stream->joined) stream->unjoined = true, stream->capture_end = stream->capture->nodes.size();
}

}  // namespace

bool record_call(cudaStream_t stream, std::function<void(cudaStream_t)> call, std::vector<const void*> uses,
                 const char* what) {
  std::lock_guard<std::recursive_mutex> guard(runtime().lock);
  if (!stream || !stream->capture) return false;
  GraphNode node{nullptr, {}, what, std::move(call)};
  add_node(stream, std::move(node), uses);
  return true;
}

void submit(cudaStream_t stream, std::function<void()> work, std::vector<const void*> uses, const char* what) {
  Runtime& r = runtime();
  std::lock_guard<std::recursive_mutex> guard(r.lock);
  if (stream && stream->capture) {
    add_node(stream, GraphNode{std::move(work), {}, what, nullptr}, uses);
    return;
  }
  if (!stream) {
    run_all(true);
    work();
    return;
  }
  stream->queue.push_back({std::move(work)});
  ++stream->queued;
  if (r.schedule == StreamSchedule::eager) run_until(stream, stream->queued);
}

}  // namespace lt::emu

using lt::emu::runtime;

cudaError_t cudaMalloc(void** pointer, size_t bytes) {
  auto& r = runtime();
  std::lock_guard<std::recursive_mutex> guard(r.lock);
  const size_t size = (bytes + 255) / 256 * 256 + 256;  // 256-byte alignment, as cudaMalloc guarantees
  *pointer = nullptr;
  if (lt::emu::invalidates_capture()) return cudaErrorStreamCaptureUnsupported;
  if (r.limit > 0 && r.in_use + size > r.limit) return cudaErrorMemoryAllocation;
  *pointer = std::aligned_alloc(256, size);
  if (!*pointer) return cudaErrorMemoryAllocation;
  r.device_allocations[static_cast<const char*>(*pointer)] = {size, ++r.allocations_made};
  r.in_use += size;
  return cudaSuccess;
}

cudaError_t cudaFree(void* pointer) {
  if (!pointer) return cudaSuccess;
  auto& r = runtime();
  std::lock_guard<std::recursive_mutex> guard(r.lock);
  if (lt::emu::invalidates_capture()) return cudaErrorStreamCaptureUnsupported;
  lt::emu::run_all(false);  // cudaFree waits for the device
  const auto it = r.device_allocations.find(static_cast<const char*>(pointer));
  if (it != r.device_allocations.end()) {
    r.in_use -= it->second.bytes;
    r.device_allocations.erase(it);
  }
  std::free(pointer);
  return cudaSuccess;
}

namespace {
thread_local int current_device = 0;
}  // namespace

cudaError_t cudaSetDevice(int device) {
  if (device < 0) return cudaErrorInvalidDevice;
  current_device = device;
  return cudaSuccess;
}

cudaError_t cudaGetDevice(int* device) {
  if (!device) return cudaErrorInvalidValue;
  *device = current_device;
  return cudaSuccess;
}

cudaError_t cudaHostAlloc(void** pointer, size_t bytes, unsigned) {
  auto& r = runtime();
  std::lock_guard<std::recursive_mutex> guard(r.lock);
  *pointer = std::aligned_alloc(4096, (bytes + 4095) / 4096 * 4096 + 4096);
  if (!*pointer) return cudaErrorMemoryAllocation;
  r.pinned[static_cast<const char*>(*pointer)] = bytes;
  return cudaSuccess;
}

cudaError_t cudaMallocHost(void** pointer, size_t bytes) {
  return cudaHostAlloc(pointer, bytes, cudaHostAllocDefault);
}

cudaError_t cudaFreeHost(void* pointer) {
  if (!pointer) return cudaSuccess;
  auto& r = runtime();
  std::lock_guard<std::recursive_mutex> guard(r.lock);
  lt::emu::run_all(false);  // queued copies may still read or write it
  if (r.pinned.erase(static_cast<const char*>(pointer)) == 0) return cudaErrorInvalidValue;
  std::free(pointer);
  return cudaSuccess;
}

cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind) {
  {
    std::lock_guard<std::recursive_mutex> guard(runtime().lock);
    if (lt::emu::invalidates_capture()) return cudaErrorStreamCaptureUnsupported;  // synchronous
  }
  lt::emu::submit(nullptr, [=] {
    if (bytes) std::memmove(dst, src, bytes);
  });
  return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t stream) {
  if (!stream || bytes == 0) return cudaMemcpy(dst, src, bytes, kind);
  auto& r = runtime();
  std::lock_guard<std::recursive_mutex> guard(r.lock);
  if (stream->capture) {  // a graph copies between device and pinned memory only
    const bool pageable = (kind == cudaMemcpyHostToDevice && !lt::emu::is_pinned(src)) ||
                          (kind == cudaMemcpyDeviceToHost && !lt::emu::is_pinned(dst));
    if (pageable) {
      stream->capture_invalid = true;
      return cudaErrorStreamCaptureUnsupported;
    }
    lt::emu::submit(
        stream, [=] { std::memmove(dst, src, bytes); }, {dst, src}, "a copy");
    return cudaSuccess;
  }
  if (kind == cudaMemcpyHostToDevice && !lt::emu::is_pinned(src)) {
    // Pageable source: staged now, so the caller may reuse it when the call returns.
    auto staged =
        std::make_shared<std::vector<char>>(static_cast<const char*>(src), static_cast<const char*>(src) + bytes);
    lt::emu::submit(stream, [=] { std::memcpy(dst, staged->data(), bytes); });
  } else if (kind == cudaMemcpyDeviceToHost && !lt::emu::is_pinned(dst)) {
    // Pageable destination: the call returns once the copy is done.
    lt::emu::submit(stream, [=] { std::memmove(dst, src, bytes); });
    lt::emu::run_until(stream, stream->queued);
  } else {
    lt::emu::submit(stream, [=] { std::memmove(dst, src, bytes); });
  }
  return cudaSuccess;
}

cudaError_t cudaMemset(void* pointer, int value, size_t bytes) {
  {
    std::lock_guard<std::recursive_mutex> guard(runtime().lock);
    if (lt::emu::invalidates_capture()) return cudaErrorStreamCaptureUnsupported;  // synchronous
  }
  lt::emu::submit(nullptr, [=] {
    if (bytes) std::memset(pointer, value, bytes);
  });
  return cudaSuccess;
}

cudaError_t cudaMemsetAsync(void* pointer, int value, size_t bytes, cudaStream_t stream) {
  lt::emu::submit(
      stream,
      [=] {
        if (bytes) std::memset(pointer, value, bytes);
      },
      {pointer}, "a memset");
  return cudaSuccess;
}

cudaError_t cudaStreamCreate(cudaStream_t* stream) {
  return cudaStreamCreateWithFlags(stream, cudaStreamDefault);
}

cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned flags) {
  auto& r = runtime();
  std::lock_guard<std::recursive_mutex> guard(r.lock);
  *stream = new CUstream_emu;
  (*stream)->blocking = (flags & cudaStreamNonBlocking) == 0;
  r.streams.push_back(*stream);
  return cudaSuccess;
}

cudaError_t cudaStreamDestroy(cudaStream_t stream) {
  if (!stream) return cudaErrorInvalidValue;
  auto& r = runtime();
  std::lock_guard<std::recursive_mutex> guard(r.lock);
  if (stream->capture) return cudaErrorStreamCaptureUnsupported;
  lt::emu::run_until(stream, stream->queued);  // its queued work still completes
  r.streams.erase(std::find(r.streams.begin(), r.streams.end(), stream));
  delete stream;
  return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t stream) {
  auto& r = runtime();
  std::lock_guard<std::recursive_mutex> guard(r.lock);
  if (stream && stream->capture) {
    stream->capture_invalid = true;
    return cudaErrorStreamCaptureUnsupported;
  }
  if (!stream)
    lt::emu::run_all(true);
  else
    lt::emu::run_until(stream, stream->queued);
  return cudaSuccess;
}

cudaError_t cudaStreamQuery(cudaStream_t stream) {
  auto& r = runtime();
  std::lock_guard<std::recursive_mutex> guard(r.lock);
  if (stream && stream->capture) {
    stream->capture_invalid = true;
    return cudaErrorStreamCaptureUnsupported;
  }
  if (!stream || stream->done == stream->queued) return cudaSuccess;
  lt::emu::run_next(stream);  // not yet; one piece of work runs, so a polling loop ends
  return cudaErrorNotReady;
}

cudaError_t cudaStreamWaitEvent(cudaStream_t stream, cudaEvent_t event, unsigned) {
  if (!event) return cudaErrorInvalidValue;
  auto& r = runtime();
  std::lock_guard<std::recursive_mutex> guard(r.lock);
  if (stream && stream->capture) {
    if (event->captured_in != stream->capture) {
      stream->capture_invalid = true;  // a dependency on work outside the graph
      return cudaErrorStreamCaptureIsolation;
    }
    // Recorded earlier in this capture; by a joined stream after its last work: that stream is joined back.
    CUstream_emu* recorder = event->captured_on;
    if (recorder != stream && recorder->joined && event->captured_at >= recorder->capture_end)
      recorder->unjoined = false;
    return cudaSuccess;
  }
  if (event->captured_in) {                                 // this stream joins the capture (a fork)
    if (!stream) return cudaErrorStreamCaptureUnsupported;  // the legacy null stream cannot be captured
    stream->capture = event->captured_in;
    stream->capture_thread = event->captured_on->capture_thread;
    stream->capture_invalid = false;
    stream->joined = true, stream->unjoined = false;
    return cudaSuccess;
  }
  if (!event->stream) return cudaSuccess;  // never recorded, or on the null stream: complete
  if (!stream) {
    lt::emu::run_all(true);
    lt::emu::run_until(event->stream, event->target);
    return cudaSuccess;
  }
  stream->queue.push_back({nullptr, event->stream, event->target});
  ++stream->queued;
  if (r.schedule == lt::emu::StreamSchedule::eager) lt::emu::run_until(stream, stream->queued);
  return cudaSuccess;
}

cudaError_t cudaEventCreate(cudaEvent_t* event) {
  *event = new CUevent_emu;
  return cudaSuccess;
}

cudaError_t cudaEventCreateWithFlags(cudaEvent_t* event, unsigned) {
  return cudaEventCreate(event);
}

cudaError_t cudaEventDestroy(cudaEvent_t event) {
  if (!event) return cudaErrorInvalidValue;
  std::lock_guard<std::recursive_mutex> guard(runtime().lock);
  lt::emu::run_until(event->stream, event->target);  // its queued record still runs
  delete event;
  return cudaSuccess;
}

cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream) {
  if (!event) return cudaErrorInvalidValue;
  auto& r = runtime();
  std::lock_guard<std::recursive_mutex> guard(r.lock);
  if (stream && stream->capture) {  // a node of the graph: only waits inside the capture may use it
    event->captured_in = stream->capture;
    event->captured_on = stream;
    event->captured_at = stream->capture->nodes.size();
    return cudaSuccess;
  }
  event->captured_in = nullptr;
  event->captured_on = nullptr;
  if (!stream) {
    lt::emu::run_all(true);
    event->stream = nullptr;
    event->completed_at_s = lt::emu::now_s();
    return cudaSuccess;
  }
  lt::emu::submit(stream, [event] { event->completed_at_s = lt::emu::now_s(); });
  event->stream = stream;
  event->target = stream->queued;
  return cudaSuccess;
}

cudaError_t cudaEventQuery(cudaEvent_t event) {
  auto& r = runtime();
  std::lock_guard<std::recursive_mutex> guard(r.lock);
  if (event->captured_in) return cudaErrorStreamCaptureUnsupported;
  if (!event->stream || event->stream->done >= event->target) return cudaSuccess;
  lt::emu::run_next(event->stream);  // not yet; one piece of work runs, so a polling loop ends
  return cudaErrorNotReady;
}

cudaError_t cudaEventSynchronize(cudaEvent_t event) {
  auto& r = runtime();
  std::lock_guard<std::recursive_mutex> guard(r.lock);
  if (event->captured_in) return cudaErrorStreamCaptureUnsupported;
  lt::emu::run_until(event->stream, event->target);
  return cudaSuccess;
}

cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end) {
  cudaEventSynchronize(start);
  cudaEventSynchronize(end);
  *ms = float((end->completed_at_s - start->completed_at_s) * 1e3);
  return cudaSuccess;
}

cudaError_t cudaLaunchHostFunc(cudaStream_t stream, cudaHostFn_t fn, void* data) {
  if (!fn) return cudaErrorInvalidValue;
  lt::emu::submit(stream, [fn, data] { fn(data); });
  return cudaSuccess;
}

cudaError_t cudaGetLastError() {
  return cudaSuccess;
}

cudaError_t cudaDeviceSynchronize() {
  auto& r = runtime();
  std::lock_guard<std::recursive_mutex> guard(r.lock);
  if (lt::emu::invalidates_capture()) return cudaErrorStreamCaptureUnsupported;
  lt::emu::run_all(false);
  return cudaSuccess;
}

const char* cudaGetErrorString(cudaError_t status) {
  switch (status) {
    case cudaSuccess:
      return "no error";
    case cudaErrorMemoryAllocation:
      return "out of memory (emulated)";
    case cudaErrorNotReady:
      return "device not ready";
    case cudaErrorInvalidDevice:
      return "invalid device ordinal";
    case cudaErrorIllegalAddress:
      return runtime().graph_problem.c_str();
    case cudaErrorStreamCaptureUnsupported:
      return "operation not permitted when stream is capturing";
    case cudaErrorStreamCaptureInvalidated:
      return "operation failed due to a previous error during capture";
    case cudaErrorStreamCaptureIsolation:
      return "dependency created on uncaptured work in another stream";
    case cudaErrorStreamCaptureUnmatched:
      return "the capture was not initiated in this stream";
    case cudaErrorStreamCaptureUnjoined:
      return "capturing stream has unjoined work";
    default:
      return "invalid argument";
  }
}

// ---- stream capture and graphs ---------------------------------------------------------------------------

cudaError_t cudaStreamBeginCapture(cudaStream_t stream, cudaStreamCaptureMode) {
  if (!stream) return cudaErrorStreamCaptureUnsupported;  // the legacy null stream cannot be captured
  auto& r = runtime();
  std::lock_guard<std::recursive_mutex> guard(r.lock);
  if (stream->capture) return cudaErrorIllegalState;
  stream->capture = new CUgraph_emu;
  stream->capture_invalid = false;
  stream->capture_thread = std::this_thread::get_id();
  return cudaSuccess;
}

cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t* graph) {
  if (!stream || !graph) return cudaErrorInvalidValue;
  auto& r = runtime();
  std::lock_guard<std::recursive_mutex> guard(r.lock);
  if (!stream->capture) return cudaErrorIllegalState;
  if (stream->joined) return cudaErrorStreamCaptureUnmatched;
  // The capture ends for the streams that joined it too; it is invalid if any of them invalidated it.
  CUgraph_emu* captured = stream->capture;
  bool invalid = false, unjoined = false;
  for (CUstream_emu* s : r.streams)
    if (s->capture == captured) {
      invalid = invalid || s->capture_invalid;
      unjoined = unjoined || s->unjoined;
      s->capture = nullptr;
      s->joined = s->unjoined = false;
    }
  *graph = captured;
  if (invalid || unjoined) {
    delete *graph;
    *graph = nullptr;
    return invalid ? cudaErrorStreamCaptureInvalidated : cudaErrorStreamCaptureUnjoined;
  }
  return cudaSuccess;
}

cudaError_t cudaStreamIsCapturing(cudaStream_t stream, cudaStreamCaptureStatus* status) {
  if (!status) return cudaErrorInvalidValue;
  *status = lt::emu::capturing(stream) ? cudaStreamCaptureStatusActive : cudaStreamCaptureStatusNone;
  return cudaSuccess;
}

cudaError_t cudaGraphInstantiate(cudaGraphExec_t* exec, cudaGraph_t graph, unsigned long long) {
  if (!exec || !graph) return cudaErrorInvalidValue;
  *exec = new CUgraphExec_emu{graph->nodes};
  return cudaSuccess;
}

cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t stream) {
  if (!exec) return cudaErrorInvalidValue;
  auto& r = runtime();
  std::unique_lock<std::recursive_mutex> guard(r.lock);
  // What a GPU cannot tell: every node's memory must still be the allocation it captured.
  for (size_t n = 0; n < exec->nodes.size(); ++n)
    for (const GraphNode::Use& use : exec->nodes[n].uses) {
      const auto& all = use.pool_block ? r.pool_blocks : r.device_allocations;
      const auto it = lt::emu::allocation_of(use.pointer, all);
      const bool freed = it == all.end() || it->first != use.start;
      if (freed || it->second.serial != use.serial) {
        char text[320];
        std::snprintf(text, sizeof text,
                      "an illegal memory access (emulated): node %zu of the graph (%s) uses %p, whose %s was %s "
                      "after capture",
                      n, exec->nodes[n].what, use.pointer,
                      use.pool_block ? "block of the caching allocator" : "allocation",
                      freed ? "freed" : "freed and allocated again");
        r.graph_problem = text;
        return cudaErrorIllegalAddress;
      }
    }
  // The nodes queued in order; a recorded call made at its turn (it may block on other ranks: not holding
  // the runtime's lock, which the loader thread may need meanwhile).
  guard.unlock();
  for (const GraphNode& node : exec->nodes)
    if (node.call)
      node.call(stream);
    else
      lt::emu::submit(stream, node.run);
  return cudaSuccess;
}

cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec) {
  if (!exec) return cudaErrorInvalidValue;
  std::lock_guard<std::recursive_mutex> guard(runtime().lock);
  lt::emu::run_all(false);  // launches of it may still be queued
  delete exec;
  return cudaSuccess;
}

cudaError_t cudaGraphDestroy(cudaGraph_t graph) {
  if (!graph) return cudaErrorInvalidValue;
  delete graph;
  return cudaSuccess;
}
