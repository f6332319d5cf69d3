// The emulated CUDA runtime's streams, events and pinned memory (kernels/cuda/emu/runtime.cpp): work runs in
// the order CUDA promises and no more, so that a dependency the code forgets to state is a wrong result
// here, every run, and not a race that shows on one GPU in a thousand steps.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "kernels/cuda/emu/cuda_emu.hpp"
#include "kernels/cuda/emu/emulated.hpp"
#include "kernels/staged_input.hpp"

namespace {

__global__ void add_one_kernel(const float* x, float* y, int n) {
  const int i = int(blockIdx.x * blockDim.x + threadIdx.x);
  if (i < n) y[i] = x[i] + 1.f;
}

constexpr int kN = 300;

// Eight rounds in which every thread of a block reads its neighbours' last values through shared memory,
// with many locals live across each barrier (they sit in registers a fiber switch must keep): out[t] is
// the same sum on the host.
__global__ void neighbour_rounds_kernel(const int* in, long long* out) {
  __shared__ long long value[256];
  const int t = int(threadIdx.x), base = int(blockIdx.x) * 256;
  long long mine = in[base + t], a = t, b = 3 * t + 1, c = mine ^ 0x5a5a, d = mine * 7;
  double e = 0.5 * t;
  for (int round = 0; round < 8; ++round) {
    value[t] = mine;
    __syncthreads();
    const long long left = value[(t + 255) % 256], right = value[(t + 1) % 256];
    __syncthreads();
    mine = left + right + (mine % 1000) + round;
    a += left % 7;
    b ^= right;
    c += a - b;
    d -= c % 5;
    e += 0.25;
  }
  out[base + t] = mine + a + b + c + d + (long long)e;
}

long long neighbour_rounds_on_host(const std::vector<int>& in, int block, int t) {
  std::vector<long long> mine(256), a(256), b(256), c(256), d(256);
  std::vector<double> e(256);
  for (int i = 0; i < 256; ++i) {
    mine[size_t(i)] = in[size_t(block * 256 + i)];
    a[size_t(i)] = i;
    b[size_t(i)] = 3 * i + 1;
    c[size_t(i)] = mine[size_t(i)] ^ 0x5a5a;
    d[size_t(i)] = mine[size_t(i)] * 7;
    e[size_t(i)] = 0.5 * i;
  }
  for (int round = 0; round < 8; ++round) {
    const std::vector<long long> value = mine;
    for (size_t i = 0; i < 256; ++i) {
      const long long left = value[(i + 255) % 256], right = value[(i + 1) % 256];
      mine[i] = left + right + (mine[i] % 1000) + round;
      a[i] += left % 7;
      b[i] ^= right;
      c[i] += a[i] - b[i];
      d[i] -= c[i] % 5;
      e[i] += 0.25;
    }
  }
  const size_t i = size_t(t);
  return mine[i] + a[i] + b[i] + c[i] + d[i] + (long long)e[i];
}

// The fibers that run a block's threads (kernels/cuda/emu/cuda_emu.cpp): each thread's locals survive
// every barrier, and the block's threads meet at each one, in either order of the threads.
TEST(EmulatedThreads, EveryThreadKeepsItsLocalsAcrossBarriersAndMeetsTheOthersAtEach) {
  constexpr int kBlocks = 3;
  std::vector<int> in(kBlocks * 256);
  for (size_t i = 0; i < in.size(); ++i) in[i] = int((i * 2654435761u) % 100000);
  int* d_in = nullptr;
  long long* d_out = nullptr;
  ASSERT_EQ(cudaMalloc(reinterpret_cast<void**>(&d_in), in.size() * sizeof(int)), cudaSuccess);
  ASSERT_EQ(cudaMalloc(reinterpret_cast<void**>(&d_out), in.size() * sizeof(long long)), cudaSuccess);
  cudaMemcpy(d_in, in.data(), in.size() * sizeof(int), cudaMemcpyHostToDevice);
  for (lt::emu::Order order : {lt::emu::Order::forward, lt::emu::Order::reverse}) {
    lt::emu::set_thread_order(order);
    cudaMemset(d_out, 0, in.size() * sizeof(long long));
    LT_LAUNCH(neighbour_rounds_kernel, kBlocks, 256, nullptr)(d_in, d_out);
    std::vector<long long> out(in.size());
    cudaMemcpy(out.data(), d_out, out.size() * sizeof(long long), cudaMemcpyDeviceToHost);
    for (int block = 0; block < kBlocks; ++block)
      for (int t = 0; t < 256; t += 17)
        ASSERT_EQ(out[size_t(block * 256 + t)], neighbour_rounds_on_host(in, block, t)) << block << " " << t;
  }
  lt::emu::set_thread_order(lt::emu::Order::forward);
  cudaFree(d_in);
  cudaFree(d_out);
}

struct DeviceBuffer {
  explicit DeviceBuffer(size_t n) : bytes(n * sizeof(float)) {
    EXPECT_EQ(cudaMalloc(&data, bytes), cudaSuccess);
    EXPECT_EQ(cudaMemset(data, 0, bytes), cudaSuccess);
  }
  ~DeviceBuffer() { cudaFree(data); }
  std::vector<float> to_host() const {
    std::vector<float> host(bytes / sizeof(float));
    cudaMemcpy(host.data(), data, bytes, cudaMemcpyDeviceToHost);
    return host;
  }
  float* data = nullptr;
  size_t bytes;
};

struct PinnedBuffer {
  explicit PinnedBuffer(size_t n) : count(n) {
    EXPECT_EQ(cudaHostAlloc(reinterpret_cast<void**>(&data), n * sizeof(float), 0), cudaSuccess);
  }
  ~PinnedBuffer() { cudaFreeHost(data); }
  float* data = nullptr;
  size_t count;
};

class Streams : public ::testing::Test {
 protected:
  void SetUp() override {
    cudaStreamCreateWithFlags(&copy_, cudaStreamNonBlocking);
    cudaStreamCreateWithFlags(&compute_, cudaStreamNonBlocking);
    cudaEventCreateWithFlags(&ready_, cudaEventDisableTiming);
  }
  void TearDown() override {
    cudaEventDestroy(ready_);
    cudaStreamDestroy(copy_);
    cudaStreamDestroy(compute_);
    lt::emu::set_stream_schedule(lt::emu::StreamSchedule::lazy);
  }
  // An upload of 1, 2, 3, … on the copy stream, then y = x + 1 on the compute stream, with or without the
  // event that orders them; y as the host reads it after synchronising the compute stream.
  std::vector<float> upload_then_compute(bool wait) {
    PinnedBuffer host(kN);
    for (int i = 0; i < kN; ++i) host.data[i] = float(i + 1);
    DeviceBuffer x(kN), y(kN);
    cudaMemcpyAsync(x.data, host.data, x.bytes, cudaMemcpyHostToDevice, copy_);
    cudaEventRecord(ready_, copy_);
    if (wait) cudaStreamWaitEvent(compute_, ready_, 0);
    LT_LAUNCH(add_one_kernel, (kN + 127) / 128, 128, compute_)(x.data, y.data, kN);
    cudaStreamSynchronize(compute_);
    std::vector<float> result(kN);
    cudaMemcpyAsync(result.data(), y.data, y.bytes, cudaMemcpyDeviceToHost, compute_);
    return result;
  }
  cudaStream_t copy_ = nullptr, compute_ = nullptr;
  cudaEvent_t ready_ = nullptr;
};

TEST_F(Streams, AnEventWaitOrdersACopyBeforeTheKernelThatReadsIt) {
  const std::vector<float> y = upload_then_compute(true);
  for (int i = 0; i < kN; ++i) ASSERT_EQ(y[size_t(i)], float(i + 2)) << i;
}

TEST_F(Streams, WithoutTheWaitTheKernelReadsTheBufferBeforeTheCopy) {
  // The dependency the code forgot: on a GPU a race, here the stale zeros every time.
  const std::vector<float> y = upload_then_compute(false);
  for (int i = 0; i < kN; ++i) ASSERT_EQ(y[size_t(i)], 1.f) << i;
}

TEST_F(Streams, WorkOfAStreamWaitsUntilSomethingNeedsIt) {
  DeviceBuffer x(kN), y(kN);
  const int64_t before = lt::emu::queued_work();
  cudaMemsetAsync(x.data, 0, x.bytes, copy_);
  LT_LAUNCH(add_one_kernel, (kN + 127) / 128, 128, compute_)(x.data, y.data, kN);
  EXPECT_EQ(lt::emu::queued_work(), before + 2);
  // A query of an unfinished stream says not ready and lets one piece of work run: a polling loop ends.
  int polls = 0;
  while (cudaStreamQuery(compute_) == cudaErrorNotReady) ++polls;
  EXPECT_EQ(polls, 1);
  EXPECT_EQ(lt::emu::queued_work(), before + 1);  // the copy stream's memset is still queued
  cudaDeviceSynchronize();
  EXPECT_EQ(lt::emu::queued_work(), before);
}

TEST_F(Streams, AnEventCompletesTheWorkBeforeItsRecordAndNoMore) {
  DeviceBuffer x(kN), y(kN);
  std::vector<float> ones(kN, 1.f);
  cudaMemcpyAsync(x.data, ones.data(), x.bytes, cudaMemcpyHostToDevice, copy_);  // pageable: staged now
  cudaEventRecord(ready_, copy_);
  cudaMemsetAsync(x.data, 0, x.bytes, copy_);  // after the record
  std::fill(ones.begin(), ones.end(), 7.f);    // the staged source is not read again
  EXPECT_EQ(cudaEventQuery(ready_), cudaErrorNotReady);
  cudaEventSynchronize(ready_);
  EXPECT_EQ(cudaEventQuery(ready_), cudaSuccess);
  // Reading x on the compute stream after the event: the upload is there, the later memset is not.
  cudaStreamWaitEvent(compute_, ready_, 0);
  LT_LAUNCH(add_one_kernel, (kN + 127) / 128, 128, compute_)(x.data, y.data, kN);
  std::vector<float> result(kN);
  cudaMemcpyAsync(result.data(), y.data, y.bytes, cudaMemcpyDeviceToHost, compute_);  // pageable: waits
  for (float v : result) ASSERT_EQ(v, 2.f);
  cudaStreamSynchronize(copy_);
  for (float v : x.to_host()) ASSERT_EQ(v, 0.f);
}

TEST_F(Streams, APinnedSourceIsReadWhenTheCopyRunsAPageableOneAtTheCall) {
  PinnedBuffer pinned(kN);
  std::vector<float> pageable(kN, 5.f);
  for (size_t i = 0; i < pinned.count; ++i) pinned.data[i] = 5.f;
  DeviceBuffer a(kN), b(kN);
  cudaMemcpyAsync(a.data, pinned.data, a.bytes, cudaMemcpyHostToDevice, copy_);
  cudaMemcpyAsync(b.data, pageable.data(), b.bytes, cudaMemcpyHostToDevice, copy_);
  // The host refills both before the copies' event: a loader that does not wait for it.
  for (size_t i = 0; i < pinned.count; ++i) pinned.data[i] = 9.f;
  std::fill(pageable.begin(), pageable.end(), 9.f);
  cudaStreamSynchronize(copy_);
  for (float v : a.to_host()) ASSERT_EQ(v, 9.f);  // the overwritten buffer reached the device
  for (float v : b.to_host()) ASSERT_EQ(v, 5.f);
}

TEST_F(Streams, TheNullStreamOrdersItselfAfterBlockingStreamsOnly) {
  cudaStream_t blocking = nullptr;
  cudaStreamCreate(&blocking);
  DeviceBuffer x(kN), y(kN);
  std::vector<float> twos(kN, 2.f);
  cudaMemcpyAsync(x.data, twos.data(), x.bytes, cudaMemcpyHostToDevice, blocking);
  cudaMemcpyAsync(y.data, twos.data(), y.bytes, cudaMemcpyHostToDevice, compute_);  // non-blocking
  // A synchronous copy runs on the null stream: after the blocking stream's upload, not the other one's.
  for (float v : x.to_host()) ASSERT_EQ(v, 2.f);
  for (float v : y.to_host()) ASSERT_EQ(v, 0.f);
  cudaStreamSynchronize(compute_);
  for (float v : y.to_host()) ASSERT_EQ(v, 2.f);
  cudaStreamDestroy(blocking);
}

TEST_F(Streams, EagerScheduleRunsWorkWhenQueued) {
  // The other adversarial order: with every piece of work run at once, the missing wait goes unnoticed —
  // which is why the lazy order is the default, and eager is there for hazards the other way round.
  lt::emu::set_stream_schedule(lt::emu::StreamSchedule::eager);
  const std::vector<float> y = upload_then_compute(false);
  for (int i = 0; i < kN; ++i) ASSERT_EQ(y[size_t(i)], float(i + 2)) << i;
}

// The backend's uploads (kernels/cuda/memory.cu): staged in pinned memory and copied on a stream of their
// own, the host not waiting for the copy, the source reusable at once; the backend's next op (on the
// compute stream) reads what was uploaded: the copy→compute event. Without that wait the scale below
// would run on the buffer's old contents (zeros), and the values read back would be 0.
TEST(BackendUploads, RunOnACopyStreamAndTheNextOpReadsThem) {
  const lt::Backend& b = lt::cuda_emu::backend();
  std::vector<float> host(kN), back(kN);
  for (int i = 0; i < kN; ++i) host[size_t(i)] = float(i + 1);
  const size_t bytes = kN * sizeof(float);
  float* x = static_cast<float*>(b.alloc(bytes));
  b.fill_zero(x, bytes);
  b.synchronize();
  const int64_t queued = lt::emu::queued_work();
  b.upload(x, host.data(), bytes);
  EXPECT_GT(lt::emu::queued_work(), queued);  // the copy is queued, not done: the host went on
  std::fill(host.begin(), host.end(), -1.f);  // the source may be reused at once
  b.scale(x, kN, 2.f);
  b.download(back.data(), x, bytes);
  for (int i = 0; i < kN; ++i) ASSERT_EQ(back[size_t(i)], 2.f * float(i + 1)) << i;
  b.release(x);
}

// The loader thread's CUDA calls go to the rank's device, not to device 0 where a new thread starts.
TEST(StagedInputs, TheLoaderThreadUsesTheRanksDevice) {
  const lt::Backend& b = lt::cuda_emu::backend();
  lt::cuda_emu::select_device(3);
  const std::vector<float> values(8, 1.f);
  int device_seen = -1;
  std::thread loader([&] {
    const lt::StagedInput staged(b, {{values.data(), values.size() * sizeof(float)}});
    cudaGetDevice(&device_seen);
  });
  loader.join();
  int main_device = -1;
  cudaGetDevice(&main_device);
  lt::cuda_emu::select_device(0);
  EXPECT_EQ(device_seen, 3);
  EXPECT_EQ(main_device, 3);
}

// Inputs uploaded ahead (kernels/staged_input.hpp): staged on another thread (the loader's), their copy
// queued while earlier work is still queued, read by the next op after the wait forward makes; the slot
// comes back for a later input, which then sees its own values.
TEST(StagedInputs, FilledOnTheLoaderThreadCopiedAheadAndReadAfterTheWait) {
  const lt::Backend& b = lt::cuda_emu::backend();
  std::vector<float> first(kN), second(kN), back(kN);
  std::vector<int64_t> small = {7, 8, 9};
  for (int i = 0; i < kN; ++i) first[size_t(i)] = float(i + 1), second[size_t(i)] = float(3 * i);
  float* x = static_cast<float*>(b.alloc(kN * sizeof(float)));
  for (const std::vector<float>* values : {&first, &second}) {
    std::unique_ptr<lt::StagedInput> staged;
    std::thread loader([&] {
      staged = std::make_unique<lt::StagedInput>(
          b, std::vector<lt::HostArray>{{small.data(), 3 * sizeof(int64_t)}, {values->data(), kN * sizeof(float)}});
    });
    loader.join();
    b.fill_zero(x, kN * sizeof(float));  // work queued before the copy: the copy does not wait for it
    const int64_t queued = lt::emu::queued_work();
    staged->upload();
    EXPECT_GT(lt::emu::queued_work(), queued);  // queued, not done: the host went on
    const float* on_device = staged->array<float>(1);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(on_device) % 256, 0u);  // each array aligned
    b.add(x, on_device, kN);
    b.scale(x, kN, 2.f);
    b.download(back.data(), x, kN * sizeof(float));
    for (int i = 0; i < kN; ++i) ASSERT_EQ(back[size_t(i)], 2.f * (*values)[size_t(i)]) << i;
    std::vector<int64_t> small_back(3);
    b.download(small_back.data(), staged->array<int64_t>(0), sizeof(int64_t) * 3);
    EXPECT_EQ(small_back, small);
  }
  b.release(x);
}

}  // namespace

// ---- stream capture and graphs --------------------------------------------------------------------------

__global__ void scale_add_kernel(const float* x, float factor, float* y, int n) {
  const int i = int(blockIdx.x * blockDim.x + threadIdx.x);
  if (i < n) y[i] = y[i] * factor + x[i];
}

// y = (y · 2 + x) + 1 captured on the compute stream: a kernel, a device copy and a kernel again.
cudaGraphExec_t capture_step(cudaStream_t stream, const DeviceBuffer& x, DeviceBuffer& y, DeviceBuffer& tmp) {
  EXPECT_EQ(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal), cudaSuccess);
  LT_LAUNCH(scale_add_kernel, 2, 256, stream)(x.data, 2.f, y.data, kN);
  EXPECT_EQ(cudaMemcpyAsync(tmp.data, y.data, y.bytes, cudaMemcpyDeviceToDevice, stream), cudaSuccess);
  LT_LAUNCH(add_one_kernel, 2, 256, stream)(tmp.data, y.data, kN);
  cudaGraph_t graph = nullptr;
  EXPECT_EQ(cudaStreamEndCapture(stream, &graph), cudaSuccess);
  cudaGraphExec_t exec = nullptr;
  EXPECT_EQ(cudaGraphInstantiate(&exec, graph, 0), cudaSuccess);
  EXPECT_EQ(cudaGraphDestroy(graph), cudaSuccess);
  return exec;
}

TEST_F(Streams, ACaptureRunsNothingAndEachLaunchRunsItAgainOnTheBuffersContents) {
  DeviceBuffer x(kN), y(kN), tmp(kN);
  std::vector<float> ones(kN, 1.f);
  cudaMemcpy(x.data, ones.data(), x.bytes, cudaMemcpyHostToDevice);
  const int64_t launches = lt::emu::launch_count();
  cudaGraphExec_t exec = capture_step(compute_, x, y, tmp);
  cudaStreamSynchronize(compute_);
  EXPECT_EQ(lt::emu::launch_count(), launches);  // recorded, not run
  EXPECT_EQ(y.to_host()[0], 0.f);
  for (int replay = 0; replay < 3; ++replay) ASSERT_EQ(cudaGraphLaunch(exec, compute_), cudaSuccess);
  cudaStreamSynchronize(compute_);
  // y: 0 → 2 → 6 → 14, as three eager steps give.
  EXPECT_EQ(y.to_host(), std::vector<float>(kN, 14.f));
  EXPECT_EQ(lt::emu::launch_count(), launches + 6);
  // A launch reads what the buffers hold then: x changed, the same graph adds the new x.
  std::vector<float> threes(kN, 3.f);
  cudaMemcpy(x.data, threes.data(), x.bytes, cudaMemcpyHostToDevice);
  ASSERT_EQ(cudaGraphLaunch(exec, compute_), cudaSuccess);
  cudaStreamSynchronize(compute_);
  EXPECT_EQ(y.to_host(), std::vector<float>(kN, 32.f));
  cudaGraphExecDestroy(exec);
}

TEST_F(Streams, ALaunchOfAGraphWhoseBufferWasFreedOrAllocatedAgainRunsNothingAndSaysWhich) {
  DeviceBuffer x(kN), y(kN);
  auto tmp = std::make_unique<DeviceBuffer>(kN);
  cudaGraphExec_t exec = capture_step(compute_, x, y, *tmp);
  tmp.reset();  // freed after capture
  EXPECT_EQ(cudaGraphLaunch(exec, compute_), cudaErrorIllegalAddress);
  EXPECT_NE(std::string(cudaGetErrorString(cudaErrorIllegalAddress)).find("freed after capture"), std::string::npos);
  // Allocated again, wherever the allocator puts it (often the same address): still not the captured one.
  tmp = std::make_unique<DeviceBuffer>(kN);
  EXPECT_EQ(cudaGraphLaunch(exec, compute_), cudaErrorIllegalAddress);
  EXPECT_NE(std::string(cudaGetErrorString(cudaErrorIllegalAddress)).find("node 1 of the graph (a copy)"),
            std::string::npos);
  cudaStreamSynchronize(compute_);
  EXPECT_EQ(y.to_host()[0], 0.f);  // nothing ran
  cudaGraphExecDestroy(exec);
}

TEST_F(Streams, WhatAGraphCannotHoldInvalidatesTheCapture) {
  DeviceBuffer x(kN);
  std::vector<float> host(kN);
  // A device allocation, a host wait and a copy from pageable memory, each on the capturing thread.
  for (int unsafe = 0; unsafe < 3; ++unsafe) {
    ASSERT_EQ(cudaStreamBeginCapture(compute_, cudaStreamCaptureModeThreadLocal), cudaSuccess);
    void* more = nullptr;
    cudaError_t status = cudaSuccess;
    if (unsafe == 0) status = cudaMalloc(&more, 64);
    if (unsafe == 1) status = cudaStreamSynchronize(compute_);
    if (unsafe == 2) status = cudaMemcpyAsync(x.data, host.data(), x.bytes, cudaMemcpyHostToDevice, compute_);
    EXPECT_EQ(status, cudaErrorStreamCaptureUnsupported) << unsafe;
    cudaGraph_t graph = nullptr;
    EXPECT_EQ(cudaStreamEndCapture(compute_, &graph), cudaErrorStreamCaptureInvalidated) << unsafe;
    EXPECT_EQ(graph, nullptr);
  }
  // A wait for work outside the capture.
  cudaEventRecord(ready_, copy_);
  ASSERT_EQ(cudaStreamBeginCapture(compute_, cudaStreamCaptureModeThreadLocal), cudaSuccess);
  EXPECT_EQ(cudaStreamWaitEvent(compute_, ready_, 0), cudaErrorStreamCaptureIsolation);
  cudaGraph_t graph = nullptr;
  EXPECT_EQ(cudaStreamEndCapture(compute_, &graph), cudaErrorStreamCaptureInvalidated);
  // Another thread may allocate meanwhile (thread-local mode: the loader's pinned slots).
  ASSERT_EQ(cudaStreamBeginCapture(compute_, cudaStreamCaptureModeThreadLocal), cudaSuccess);
  std::thread([] {
    void* other = nullptr;
    EXPECT_EQ(cudaMalloc(&other, 64), cudaSuccess);
    cudaFree(other);
  }).join();
  EXPECT_EQ(cudaStreamEndCapture(compute_, &graph), cudaSuccess);
  cudaGraphDestroy(graph);
}

// A fork-join captured: the copy stream joins the capture by waiting for an event recorded in it, and its
// work becomes part of the graph; a call recorded in between runs at its turn in each launch (the nodes
// before it done, the ones after it not yet).
TEST_F(Streams, AStreamThatWaitsForACapturedEventJoinsTheCaptureAndEachLaunchRunsBothStreamsWork) {
  DeviceBuffer x(kN), y(kN), z(kN);
  std::vector<float> ones(kN, 1.f);
  cudaMemcpy(x.data, ones.data(), x.bytes, cudaMemcpyHostToDevice);
  cudaEvent_t done = nullptr;
  cudaEventCreateWithFlags(&done, cudaEventDisableTiming);
  std::vector<float> seen_by_call;  // y at the call's turn, each launch
  const int64_t launches = lt::emu::launch_count();
  ASSERT_EQ(cudaStreamBeginCapture(compute_, cudaStreamCaptureModeThreadLocal), cudaSuccess);
  LT_LAUNCH(scale_add_kernel, 2, 256, compute_)(x.data, 2.f, y.data, kN);  // y = 2y + 1
  ASSERT_EQ(cudaEventRecord(ready_, compute_), cudaSuccess);
  ASSERT_EQ(cudaStreamWaitEvent(copy_, ready_, 0), cudaSuccess);  // the fork: copy_ joins
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  cudaStreamIsCapturing(copy_, &status);
  EXPECT_EQ(status, cudaStreamCaptureStatusActive);
  LT_LAUNCH(add_one_kernel, 2, 256, copy_)(y.data, z.data, kN);  // z = y + 1
  ASSERT_TRUE(lt::emu::record_call(
      copy_,
      [&](cudaStream_t stream) {
        cudaStreamSynchronize(stream);
        seen_by_call.push_back(y.to_host()[0]);
      },
      {y.data}, "a test's call"));
  ASSERT_EQ(cudaEventRecord(done, copy_), cudaSuccess);
  ASSERT_EQ(cudaStreamWaitEvent(compute_, done, 0), cudaSuccess);          // the join
  LT_LAUNCH(scale_add_kernel, 2, 256, compute_)(z.data, 1.f, y.data, kN);  // y = y + z
  cudaGraph_t graph = nullptr;
  ASSERT_EQ(cudaStreamEndCapture(compute_, &graph), cudaSuccess);
  cudaStreamIsCapturing(copy_, &status);
  EXPECT_EQ(status, cudaStreamCaptureStatusNone);  // the capture ended for the joined stream too
  cudaGraphExec_t exec = nullptr;
  ASSERT_EQ(cudaGraphInstantiate(&exec, graph, 0), cudaSuccess);
  cudaGraphDestroy(graph);
  EXPECT_EQ(lt::emu::launch_count(), launches);  // recorded, not run
  EXPECT_TRUE(seen_by_call.empty());
  // Eagerly: y = 2y + 1, z = y + 1, y = y + z: y 0 → 3 → 15, z 2 → 8.
  for (int launch = 0; launch < 2; ++launch) ASSERT_EQ(cudaGraphLaunch(exec, compute_), cudaSuccess);
  cudaStreamSynchronize(compute_);
  EXPECT_EQ(y.to_host(), std::vector<float>(kN, 15.f));
  EXPECT_EQ(z.to_host(), std::vector<float>(kN, 8.f));
  EXPECT_EQ(seen_by_call, (std::vector<float>{1.f, 7.f}));  // after the first kernel, before the last
  EXPECT_EQ(lt::emu::launch_count(), launches + 6);
  cudaGraphExecDestroy(exec);
  cudaEventDestroy(done);
}

// A joined stream whose work the capture never waits for, or the capture ended on the joined stream.
TEST_F(Streams, AJoinedStreamMustBeJoinedBackAndTheCaptureEndsWhereItBegan) {
  DeviceBuffer y(kN), z(kN);
  ASSERT_EQ(cudaStreamBeginCapture(compute_, cudaStreamCaptureModeThreadLocal), cudaSuccess);
  cudaEventRecord(ready_, compute_);
  cudaStreamWaitEvent(copy_, ready_, 0);
  EXPECT_EQ(cudaStreamEndCapture(copy_, nullptr), cudaErrorInvalidValue);
  cudaGraph_t graph = nullptr;
  EXPECT_EQ(cudaStreamEndCapture(copy_, &graph), cudaErrorStreamCaptureUnmatched);
  LT_LAUNCH(add_one_kernel, 2, 256, copy_)(y.data, z.data, kN);  // never waited for
  EXPECT_EQ(cudaStreamEndCapture(compute_, &graph), cudaErrorStreamCaptureUnjoined);
  EXPECT_EQ(graph, nullptr);
  // Out of the capture, the copy stream runs its work again.
  LT_LAUNCH(add_one_kernel, 2, 256, copy_)(y.data, z.data, kN);
  cudaStreamSynchronize(copy_);
  EXPECT_EQ(z.to_host(), std::vector<float>(kN, 1.f));
  EXPECT_FALSE(lt::emu::record_call(
      copy_, [](cudaStream_t) {}, {}, "not captured"));
}

TEST_F(Streams, ALaunchOfAGraphWhoseCachingAllocatorBlockWentBackIsCaught) {
  DeviceBuffer pool(kN), y(kN);  // `pool` stands for a caching allocator's memory; a block of it is handed out
  lt::emu::note_pool_block(pool.data, pool.bytes, true);
  ASSERT_EQ(cudaStreamBeginCapture(compute_, cudaStreamCaptureModeThreadLocal), cudaSuccess);
  LT_LAUNCH(add_one_kernel, 2, 256, compute_)(pool.data, y.data, kN);
  cudaGraph_t graph = nullptr;
  ASSERT_EQ(cudaStreamEndCapture(compute_, &graph), cudaSuccess);
  cudaGraphExec_t exec = nullptr;
  ASSERT_EQ(cudaGraphInstantiate(&exec, graph, 0), cudaSuccess);
  cudaGraphDestroy(graph);
  EXPECT_EQ(cudaGraphLaunch(exec, compute_), cudaSuccess);
  // Back to the cache (no cudaFree), then handed out again: both are another owner's memory now.
  lt::emu::note_pool_block(pool.data, pool.bytes, false);
  EXPECT_EQ(cudaGraphLaunch(exec, compute_), cudaErrorIllegalAddress);
  EXPECT_NE(std::string(cudaGetErrorString(cudaErrorIllegalAddress)).find("block of the caching allocator was freed"),
            std::string::npos);
  lt::emu::note_pool_block(pool.data, pool.bytes, true);
  EXPECT_EQ(cudaGraphLaunch(exec, compute_), cudaErrorIllegalAddress);
  EXPECT_NE(std::string(cudaGetErrorString(cudaErrorIllegalAddress)).find("freed and allocated again"),
            std::string::npos);
  lt::emu::note_pool_block(pool.data, pool.bytes, false);
  cudaStreamSynchronize(compute_);
  EXPECT_EQ(y.to_host(), std::vector<float>(kN, 1.f));  // the one good launch ran
  cudaGraphExecDestroy(exec);
}
