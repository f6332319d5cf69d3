#pragma once
// Writing a dataset directory from many ranks. Frames are numbered globally; shard s of K holds frames
// [s*F/K, (s+1)*F/K) and is written by rank s % world_size, so the shard files — and their bytes — do
// not depend on how many ranks wrote them. Each rank writes whole shards of its own (plain POSIX HDF5
// files, no MPI-IO): independent writes need no coordination until the end, when the ranks agree that
// every shard is there and rank 0 renames the staging directory `OUT.partial` to `OUT`. A failure on any
// rank leaves no `OUT` behind.
#include <cstdint>
#include <functional>
#include <string>

#include "io/dataset.hpp"
#include "mpi/comm.hpp"

namespace lt {

struct ShardedWriteSummary {
  int64_t frames = 0;  // over all ranks
  int64_t points = 0;
  int64_t boxes = 0;
  int shards = 0;
  double seconds = 0;  // wall time of the slowest rank
};

struct ShardedWriteOptions {
  std::string out_dir;
  int64_t num_frames = 0;
  int num_shards = 0;      // 0: default_shard_count(num_frames)
  bool overwrite = false;  // replace an existing out_dir
  DatasetKind kind;
  std::string source;
};

// One shard per 32 frames: a function of the frame count only (never of the rank count).
int default_shard_count(int64_t num_frames);

// Frames of one shard are made in parallel by OpenMP threads, so `make_frame` must be thread-safe.
// It throws InputError naming the input it failed on. Collective: every rank calls it.
ShardedWriteSummary write_sharded_dataset(const Comm& comm, const ShardedWriteOptions& options,
                                          const std::function<Frame(int64_t)>& make_frame);

}  // namespace lt
