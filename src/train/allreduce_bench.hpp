#pragma once
// The all-reduce benchmark a data-parallel run makes once at its start (the first line of metrics.jsonl).
#include <cstdint>
#include <string>

#include "mpi/reduce_backend.hpp"

namespace lt {

// A blocking all-reduce of the whole gradient buffer, timed: the figure the scaling study reports as
// bus bandwidth (NCCL-tests' definition: 2 (n − 1) / n · bytes / time).
struct AllreduceBench {
  int64_t bytes = 0;
  double seconds = 0;
};
// Times a blocking all-reduce of `floats` floats through `backend` (a warm-up, then the mean of 5).
// `buffer`: `floats` values where the backend sums (host or device memory); its contents change.
AllreduceBench bench_allreduce(ReduceBackend& backend, float* buffer, int64_t floats);
// Its metrics.jsonl line, with the bus bandwidth.
std::string allreduce_bench_json(const AllreduceBench& bench, int ranks);

}  // namespace lt
