// The NCCL reduce backend (DESIGN.md §7): sums of device arrays, device pointers handed straight to NCCL,
// on a communication stream of the rank's own.
//
// Ordering, by events only (no device-wide synchronisation, the host never waits for a bucket):
//   compute → communication  a bucket's sum starts after an event recorded on the compute stream when
//                            start_sum is called (backward has queued every kernel writing those gradients);
//   communication → compute  wait() makes the compute stream wait for the sum's completion event, so the
//                            gradient norm and the optimizer, queued after it, read the summed gradients.
// Sums run on the communication stream in the order they are started, the same on every rank (NCCL
// matches collectives by order). A host function after each sum counts the finished ones, which the
// watchdog reads from its own thread (finished_sums) without a CUDA call.
#include <atomic>
#include <cstring>
#include <string>
#include <vector>

#include "kernels/cuda/runtime.cuh"
#include "mpi/nccl_backend.hpp"
#if defined(__CUDACC__)
#include <nccl.h>
#else
#include "mpi/nccl_emu.hpp"
#endif

namespace lt::LT_CUDA_NS {
namespace {

class NcclReduceBackend final : public ReduceBackend {
 public:
  explicit NcclReduceBackend(const NcclSetup& setup) : ranks_(setup.ranks), fatal_(setup.fatal) {
    ncclUniqueId id;
    std::memset(&id, 0, sizeof id);
    if (setup.rank == 0) check_nccl(ncclGetUniqueId(&id), "ncclGetUniqueId");
    setup.broadcast_from_root(&id, sizeof id);
    check_nccl(ncclCommInitRank(&comm_, ranks_, id, setup.rank), "ncclCommInitRank");
    check(cudaStreamCreateWithFlags(&comm_stream_, cudaStreamNonBlocking), "cudaStreamCreateWithFlags");
    broadcast_ = make_sum();
    statistics_ = make_sum();
    check(cudaEventCreate(&waits_start_), "cudaEventCreate");
    check(cudaEventCreate(&waits_end_), "cudaEventCreate");
  }

  ~NcclReduceBackend() override {
    if (aborted_) return;  // the job is ending; the communicator went with ncclCommAbort
    cudaStreamSynchronize(comm_stream_);
    sums_.push_back(broadcast_);
    sums_.push_back(statistics_);
    for (Sum& sum : sums_) cudaEventDestroy(sum.ready), cudaEventDestroy(sum.done);
    cudaEventDestroy(waits_start_), cudaEventDestroy(waits_end_);
    ncclCommDestroy(comm_);
    cudaStreamDestroy(comm_stream_);
  }

  const char* name() const override { return "nccl"; }
  int ranks() const override { return ranks_; }
  bool sums_device_memory() const override { return true; }

  Handle start_sum(float* values, int64_t count) override {
    const Handle handle = free_sum();
    Sum& sum = sums_[size_t(handle)];
    check(cudaEventRecord(sum.ready, stream()), "cudaEventRecord");
    check(cudaStreamWaitEvent(comm_stream_, sum.ready, 0), "cudaStreamWaitEvent");
    check_nccl(ncclAllReduce(values, values, size_t(count), ncclFloat32, ncclSum, comm_, comm_stream_),
               "ncclAllReduce");
    check(cudaEventRecord(sum.done, comm_stream_), "cudaEventRecord");
    check(cudaLaunchHostFunc(comm_stream_, count_finished, this), "cudaLaunchHostFunc");
    return handle;
  }

  bool test(Handle handle) override {
    poll_async_error();
    const cudaError_t status = cudaEventQuery(sums_[size_t(handle)].done);
    if (status == cudaErrorNotReady) return false;
    check(status, "cudaEventQuery");
    return true;
  }

  // The compute stream waits for the sum; the host goes on. Timing events around the waits (nothing is
  // queued between consecutive waits) measure how long the compute stream stood in them.
  void wait(Handle handle) override {
    poll_async_error();
    Sum& sum = sums_[size_t(handle)];
    if (!waits_timed_) check(cudaEventRecord(waits_start_, stream()), "cudaEventRecord");
    check(cudaStreamWaitEvent(stream(), sum.done, 0), "cudaStreamWaitEvent");
    check(cudaEventRecord(waits_end_, stream()), "cudaEventRecord");
    waits_timed_ = true;
    sum.waited = true;
  }

  double device_wait_s() override {
    if (!waits_timed_) return 0;
    waits_timed_ = false;
    float ms = 0;
    check(cudaEventSynchronize(waits_end_), "cudaEventSynchronize");
    check(cudaEventElapsedTime(&ms, waits_start_, waits_end_), "cudaEventElapsedTime");
    return double(ms) / 1e3;
  }

  // Device floats, after the compute stream's work so far; the compute stream's next work sees them.
  void broadcast(float* values, int64_t count, int root) override {
    check(cudaEventRecord(broadcast_.ready, stream()), "cudaEventRecord");
    check(cudaStreamWaitEvent(comm_stream_, broadcast_.ready, 0), "cudaStreamWaitEvent");
    check_nccl(ncclBroadcast(values, values, size_t(count), ncclFloat32, root, comm_, comm_stream_), "ncclBroadcast");
    check(cudaEventRecord(broadcast_.done, comm_stream_), "cudaEventRecord");
    check(cudaStreamWaitEvent(stream(), broadcast_.done, 0), "cudaStreamWaitEvent");
    poll_async_error();
  }

  // Device doubles (SyncBN's sums), after the compute stream's work so far; the compute stream's next work
  // sees the sums, the host goes on. While the compute stream is captured (train.cuda_graphs), the
  // communication stream joins the capture at the first event and is joined back by the second: the graph
  // holds the all-reduce, and every launch of it sums again (the ranks launch together: Model's agreement).
  void sum(double* values, int64_t count) override {
    check(cudaEventRecord(statistics_.ready, stream()), "cudaEventRecord");
    check(cudaStreamWaitEvent(comm_stream_, statistics_.ready, 0), "cudaStreamWaitEvent");
    check_nccl(ncclAllReduce(values, values, size_t(count), ncclFloat64, ncclSum, comm_, comm_stream_),
               "ncclAllReduce");
    check(cudaEventRecord(statistics_.done, comm_stream_), "cudaEventRecord");
    check(cudaStreamWaitEvent(stream(), statistics_.done, 0), "cudaStreamWaitEvent");
    poll_async_error();
  }

  int64_t finished_sums() const override { return finished_.load(); }

  void abort() override {
    aborted_ = true;
    ncclCommAbort(comm_);
  }

 private:
  struct Sum {
    cudaEvent_t ready = nullptr, done = nullptr;
    bool waited = true;  // free for reuse once the compute stream was ordered after it
  };

  static void count_finished(void* self) { ++static_cast<NcclReduceBackend*>(self)->finished_; }

  Handle free_sum() {
    for (size_t h = 0; h < sums_.size(); ++h)
      if (sums_[h].waited) {
        sums_[h].waited = false;
        return Handle(h);
      }
    sums_.push_back(make_sum());
    sums_.back().waited = false;
    return Handle(sums_.size() - 1);
  }

  static Sum make_sum() {
    Sum sum;
    check(cudaEventCreateWithFlags(&sum.ready, cudaEventDisableTiming), "cudaEventCreateWithFlags");
    check(cudaEventCreateWithFlags(&sum.done, cudaEventDisableTiming), "cudaEventCreateWithFlags");
    return sum;
  }

  void check_nccl(ncclResult_t status, const char* what) {
    if (status != ncclSuccess) fatal_(std::string(what) + ": " + ncclGetErrorString(status));
  }

  void poll_async_error() {
    ncclResult_t status = ncclSuccess;
    ncclCommGetAsyncError(comm_, &status);
    if (status != ncclSuccess && status != ncclInProgress)
      fatal_(std::string("NCCL collective failed: ") + ncclGetErrorString(status));
  }

  int ranks_;
  std::function<void(const std::string&)> fatal_;
  ncclComm_t comm_ = nullptr;
  cudaStream_t comm_stream_ = nullptr;
  std::vector<Sum> sums_;                                    // a handle indexes these
  Sum broadcast_;                                            // the events of broadcast()
  Sum statistics_;                                           // the events of sum()
  cudaEvent_t waits_start_ = nullptr, waits_end_ = nullptr;  // timing: around the waits since device_wait_s
  bool waits_timed_ = false;
  std::atomic<int64_t> finished_{0};
  std::atomic<bool> aborted_{false};
};

}  // namespace

std::unique_ptr<ReduceBackend> make_nccl_reduce_backend(const NcclSetup& setup) {
  return std::make_unique<NcclReduceBackend>(setup);
}

#if defined(__CUDACC__)
std::string nccl_version() {
  int version = 0;
  if (ncclGetVersion(&version) != ncclSuccess) return "unknown";
  // NCCL_VERSION_CODE since 2.9: major * 10000 + minor * 100 + patch.
  return std::to_string(version / 10000) + "." + std::to_string(version / 100 % 100) + "." +
         std::to_string(version % 100);
}
#endif

}  // namespace lt::LT_CUDA_NS
