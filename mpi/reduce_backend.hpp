#pragma once
// What data parallelism needs from a communication backend (DESIGN.md §7), and nothing of MPI's types,
// so that the NCCL backend (a side stream, ncclAllReduce) implements the same interface:
//   - non-blocking in-place sums of gradient buckets, posted in the same order on every rank;
//   - blocking in-place sums of small statistics (SyncBN's per-channel sums).
// The MPI backend posts MPI_Iallreduce on a communicator of its own (a duplicate of the world), so
// gradient buckets never interleave with other collectives; MPI_Test drives their progress.
#include <cstdint>
#include <memory>

#include "mpi/comm.hpp"

namespace lt {

class ReduceBackend {
 public:
  using Handle = int;
  virtual ~ReduceBackend() = default;
  virtual const char* name() const = 0;
  virtual int ranks() const = 0;
  // Starts summing `count` floats over ranks, in place. The buffer is not to be touched until done.
  virtual Handle start_sum(float* values, int64_t count) = 0;
  // True once the sum has arrived; also lets the backend make progress on every pending sum.
  virtual bool test(Handle handle) = 0;
  virtual void wait(Handle handle) = 0;
  // Sums in place and returns when done.
  virtual void sum(double* values, int64_t count) = 0;
};

std::unique_ptr<ReduceBackend> make_mpi_reduce_backend(const Comm& comm);

}  // namespace lt
