#pragma once
// What data parallelism needs from a communication backend (DESIGN.md §7), and nothing of MPI's or
// NCCL's types:
//   - non-blocking in-place sums of gradient buckets, posted in the same order on every rank;
//   - in-place sums of small statistics (SyncBN's per-channel sums, doubles in the memory start_sum takes).
// The kinds, registered by name in reduce_backend.cpp (train.comm):
//   mpi   host arrays: MPI_Iallreduce on a communicator of its own (a duplicate of the world), so gradient
//         buckets never interleave with other collectives; MPI_Test drives their progress. On a GPU the
//         gradients are staged through the host.
//   nccl  device arrays of the rank's GPU (mpi/nccl_backend.cu): ncclAllReduce on a communication stream,
//         ordered with the compute stream by events; the host never waits for a bucket.
#include <cstdint>
#include <memory>
#include <string>

#include "mpi/comm.hpp"

namespace lt {

struct Backend;

class ReduceBackend {
 public:
  using Handle = int;
  virtual ~ReduceBackend() = default;
  virtual const char* name() const = 0;
  virtual int ranks() const = 0;
  // True: start_sum takes device arrays of the rank's device (whose compute stream orders them).
  virtual bool sums_device_memory() const { return false; }
  // Starts summing `count` floats over ranks, in place. The buffer is not to be touched until done;
  // on the device, the sum starts after the work queued so far.
  virtual Handle start_sum(float* values, int64_t count) = 0;
  // True once the sum has arrived; also lets the backend make progress on every pending sum.
  virtual bool test(Handle handle) = 0;
  // After it, what the caller does next sees the sum: the host (mpi), or the work it queues on the
  // device (nccl: the compute stream waits for the sum's event; the host does not).
  virtual void wait(Handle handle) = 0;
  // Seconds the device's compute stream stood in the waits (wait()) since the last call: the exposed
  // communication of a step, timed on the device by events; read once the step's work is done (after its
  // scalar read). 0 where the waits are the host's (mpi: the caller times them).
  virtual double device_wait_s() { return 0; }
  // Sums in place, in the memory start_sum takes; what the caller does next sees the sums, as after wait()
  // (mpi: returns when done; nccl: the compute stream waits, the host goes on, and a stream capture of the
  // compute stream records the sum with the rest).
  virtual void sum(double* values, int64_t count) = 0;
  // Rank `root`'s `count` floats to every rank, in place; ordered like wait() (nccl: on the device, the
  // host goes on).
  virtual void broadcast(float* values, int64_t count, int root) = 0;
  // Sums finished since the backend was made (in the order started). Safe from any thread: the watchdog
  // reads it to name the bucket a hung step waits for.
  virtual int64_t finished_sums() const = 0;
  // From any thread, when the job is to end: unblocks what waits on a peer (ncclCommAbort). MPI has
  // nothing of its own to abort (MPI_Abort ends the job).
  virtual void abort() {}
};

// train.comm's values: "auto" (nccl on a GPU where this build has NCCL, else mpi) or a kind's name, as
// "auto, mpi, nccl" (the registry's list, for messages).
std::string reduce_backend_choices();
bool is_reduce_backend_choice(const std::string& name);
// train.comm's values: "auto" (nccl on a GPU where this build has NCCL, else mpi) or a kind's name.
// The kind for the rank's device, or an InputError naming `key` (nccl without a GPU or without NCCL).
std::string resolve_reduce_backend(const std::string& name, const Backend& device, const std::string& key);
std::unique_ptr<ReduceBackend> make_reduce_backend(const std::string& name, const Comm& comm, const Backend& device);
std::unique_ptr<ReduceBackend> make_mpi_reduce_backend(const Comm& comm);

}  // namespace lt
