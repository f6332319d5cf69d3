#include "io/sharded_writer.hpp"

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <vector>

#include "io/atomic_file.hpp"
#include "src/common/error.hpp"

namespace lt {
namespace fs = std::filesystem;

int default_shard_count(int64_t num_frames) {
  return int(std::max<int64_t>(1, (num_frames + 31) / 32));
}

namespace {

std::string shard_name(int shard) {
  char name[32];
  std::snprintf(name, sizeof name, "shard-%05d.h5", shard);
  return name;
}

}  // namespace

ShardedWriteSummary write_sharded_dataset(const Comm& comm, const ShardedWriteOptions& options,
                                          const std::function<Frame(int64_t)>& make_frame) {
  const auto start = std::chrono::steady_clock::now();
  const fs::path out = options.out_dir;
  const fs::path staging = out.string() + ".partial";
  const int num_shards = options.num_shards > 0 ? options.num_shards : default_shard_count(options.num_frames);
  require(options.num_frames > 0, "--frames must be positive");
  require(num_shards <= options.num_frames,
          "--shards " + std::to_string(num_shards) + " exceeds the " + std::to_string(options.num_frames) + " frames");

  const auto remove_staging = [&] {
    if (comm.is_root()) {
      std::error_code ignored;
      fs::remove_all(staging, ignored);
    }
  };

  // A write that fails (full disk, no permission) on any rank leaves nothing: the staging directory goes.
  ShardedWriteSummary mine;
  try {
    run_agreed(
        comm,
        [&] {
          if (!comm.is_root()) return;
          std::error_code ec;
          require(options.overwrite || !fs::exists(out, ec),
                  out.string() + ": already exists (use --force to replace it)");
          fs::remove_all(staging, ec);
          create_directories(staging.string(), "staging directory");
        },
        [] {});

    run_agreed(
        comm,
        [&] {
          for (int shard = comm.rank(); shard < num_shards; shard += comm.size()) {
            const int64_t first = options.num_frames * shard / num_shards;
            const int64_t last = options.num_frames * (shard + 1) / num_shards;
            std::vector<Frame> frames(size_t(last - first));
            std::vector<std::optional<InputError>> errors(frames.size());
#pragma omp parallel for schedule(dynamic, 1)
            for (int64_t i = 0; i < last - first; ++i) {
              try {
                frames[i] = make_frame(first + i);
              } catch (const InputError& e) {
                errors[i] = e;
              }
            }
            for (const auto& error : errors)
              if (error) throw *error;  // the first failing frame, in frame order
            write_shard((staging / shard_name(shard)).string(), frames, options.kind, options.source);
            mine.shards += 1;
            for (const Frame& frame : frames) {
              mine.frames += 1;
              mine.points += frame.num_points();
              mine.boxes += frame.num_boxes();
            }
          }
        },
        remove_staging);

    run_agreed(
        comm,
        [&] {
          if (!comm.is_root()) return;
          std::error_code ec;
          if (fs::exists(out, ec)) fs::remove_all(out, ec);
          if (ec) throw WriteError::os(out.string(), "removing the old dataset", ec.value());
          fs::rename(staging, out, ec);
          if (ec) throw WriteError::os(out.string(), "renaming " + staging.string() + " into place", ec.value());
        },
        remove_staging);
  } catch (const WriteError& e) {
    throw e.with_context(out.string() + " was not written (nothing of it is left)");
  }

  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const auto totals = comm.sum(std::vector<int64_t>{mine.frames, mine.points, mine.boxes, mine.shards});
  return ShardedWriteSummary{totals[0], totals[1], totals[2], int(totals[3]), comm.max(seconds)};
}

}  // namespace lt
