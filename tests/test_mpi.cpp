// Tests that need several ranks; ctest runs this binary under `mpirun -np 2` and `-np 4 --oversubscribe`.
#include <gtest/gtest.h>

#include <filesystem>
#include <functional>

#include "io/dataset.hpp"
#include "io/sharded_writer.hpp"
#include "mpi/comm.hpp"
#include "src/common/error.hpp"

namespace lt {
namespace {

namespace fs = std::filesystem;

// Every rank must use the same directory: derive it from something all ranks share.
std::string shared_dir(const std::string& name) {
  const Comm comm = Comm::world();
  const std::string dir =
      (fs::temp_directory_path() / ("lidartrain_mpi_" + name + "_np" + std::to_string(comm.size()))).string();
  if (comm.is_root()) {
    fs::remove_all(dir);
    fs::remove_all(dir + ".partial");
  }
  comm.barrier();
  return dir;
}

Frame numbered_frame(int64_t f) {
  Frame frame;
  frame.id = "frame-" + std::to_string(f);
  for (int64_t i = 0; i < 100 + 37 * f; ++i) {
    frame.points.insert(frame.points.end(), {float(f), float(i) * 0.1f, -1.f, 0.5f});
    frame.labels.push_back(uint8_t(i % 20));
  }
  for (int64_t b = 0; b < f % 4; ++b) {
    frame.boxes.insert(frame.boxes.end(), {float(b), float(f), 0.f, 1.f, 1.f, 1.f, 0.f});
    frame.box_labels.push_back(uint8_t(1 + b % 3));
  }
  return frame;
}

TEST(ShardedWrite, EveryRankWritesItsShardsAndEveryFrameReadsBack) {
  const Comm comm = Comm::world();
  ShardedWriteOptions options;
  options.out_dir = shared_dir("write");
  options.num_frames = 23;
  options.num_shards = 5;
  options.kind = DatasetKind{true, true};
  options.source = "mpi test";
  const ShardedWriteSummary summary = write_sharded_dataset(comm, options, numbered_frame);
  EXPECT_EQ(summary.frames, 23);
  EXPECT_EQ(summary.shards, 5);
  int64_t expected_points = 0;
  for (int64_t f = 0; f < 23; ++f) expected_points += numbered_frame(f).num_points();
  EXPECT_EQ(summary.points, expected_points);
  EXPECT_FALSE(fs::exists(options.out_dir + ".partial"));

  const DatasetReader reader(options.out_dir);
  ASSERT_EQ(reader.num_frames(), 23);
  EXPECT_EQ(reader.shard_paths().size(), 5u);
  for (int64_t f = 0; f < 23; ++f) {
    const Frame got = reader.read(f), want = numbered_frame(f);
    EXPECT_EQ(got.id, want.id);
    EXPECT_EQ(got.points, want.points);
    EXPECT_EQ(got.labels, want.labels);
    EXPECT_EQ(got.boxes, want.boxes);
  }
}

TEST(ShardedWrite, AFrameFailingOnOneRankFailsEveryRankAndLeavesNothing) {
  const Comm comm = Comm::world();
  ShardedWriteOptions options;
  options.out_dir = shared_dir("fail");
  options.num_frames = 8;
  options.num_shards = 4;  // shard 3 (frames 6, 7) belongs to rank 3 % size
  options.kind = DatasetKind{true, true};
  const int failing_rank = 3 % comm.size();
  std::string what;
  bool peer_failed = false;
  try {
    write_sharded_dataset(comm, options, [](int64_t f) {
      if (f == 7) throw InputError("raw/000007.bin: truncated");
      return numbered_frame(f);
    });
  } catch (const RankError& e) {
    what = e.what();
    EXPECT_EQ(e.rank, comm.rank());
  } catch (const PeerFailed&) {
    peer_failed = true;
  }
  if (comm.rank() == failing_rank) {
    EXPECT_EQ(what, "raw/000007.bin: truncated");
  } else {
    EXPECT_TRUE(peer_failed);
  }
  comm.barrier();
  EXPECT_FALSE(fs::exists(options.out_dir));
  EXPECT_FALSE(fs::exists(options.out_dir + ".partial"));
}

TEST(ShardedWrite, ExistingOutputIsKeptUnlessForced) {
  const Comm comm = Comm::world();
  ShardedWriteOptions options;
  options.out_dir = shared_dir("exists");
  options.num_frames = 3;
  options.kind = DatasetKind{true, true};
  write_sharded_dataset(comm, options, numbered_frame);
  bool refused = false;
  try {
    write_sharded_dataset(comm, options, numbered_frame);
  } catch (const RankError& e) {
    refused = std::string(e.what()).find("already exists") != std::string::npos;
  } catch (const PeerFailed&) {
    refused = true;
  }
  EXPECT_TRUE(refused);
  options.overwrite = true;
  options.num_frames = 4;
  write_sharded_dataset(comm, options, numbered_frame);
  EXPECT_EQ(DatasetReader(options.out_dir).num_frames(), 4);
}

// Runs a step that throws `message_of(rank)` on the upper half of the ranks; counts who reported.
struct Reports {
  int64_t reported = 0, quiet = 0;
};
Reports run_failing_upper_half(const Comm& comm, const std::function<std::string(int)>& message_of,
                               std::string* my_message) {
  int reported = 0, quiet = 0;
  try {
    run_agreed(comm, [&] {
      if (comm.rank() >= comm.size() / 2) throw InputError(message_of(comm.rank()));
    });
  } catch (const RankError& e) {
    reported = 1;
    *my_message = e.what();
  } catch (const PeerFailed&) {
    quiet = 1;
  }
  return Reports{comm.sum(int64_t(reported)), comm.sum(int64_t(quiet))};
}

TEST(Comm, EveryFailingRankReportsItsOwnError) {
  const Comm comm = Comm::world();
  std::string message;
  const Reports reports =
      run_failing_upper_half(comm, [](int rank) { return "bad on rank " + std::to_string(rank); }, &message);
  const int failing = comm.size() - comm.size() / 2;
  EXPECT_EQ(reports.reported, failing);
  EXPECT_EQ(reports.quiet, comm.size() - failing);
  if (comm.rank() >= comm.size() / 2) EXPECT_EQ(message, "bad on rank " + std::to_string(comm.rank()));
}

TEST(Comm, AnErrorEveryFailingRankSharesIsReportedOnce) {
  const Comm comm = Comm::world();
  std::string message;
  const Reports reports = run_failing_upper_half(comm, [](int) { return std::string("bad config key"); }, &message);
  EXPECT_EQ(reports.reported, 1);
  EXPECT_EQ(reports.quiet, comm.size() - 1);
  if (comm.rank() == comm.size() / 2) EXPECT_EQ(message, "bad config key");
}

TEST(Comm, CollectivesAgree) {
  const Comm comm = Comm::world();
  EXPECT_EQ(comm.sum(int64_t(comm.rank() + 1)), int64_t(comm.size()) * (comm.size() + 1) / 2);
  EXPECT_TRUE(comm.all_ok(true));
  EXPECT_FALSE(comm.all_ok(comm.rank() != comm.size() - 1));
  EXPECT_EQ(comm.max(double(comm.rank())), double(comm.size() - 1));
  EXPECT_EQ(comm.min(comm.rank() + 5), 5);
  EXPECT_EQ(comm.broadcast({comm.rank() == 0 ? 42 : 0}, 0), std::vector<int64_t>{42});
}

}  // namespace
}  // namespace lt

int main(int argc, char** argv) {
  lt::Comm::init(&argc, &argv);
  ::testing::InitGoogleTest(&argc, argv);
  // Only rank 0 reports; every rank's failures still count in its exit code.
  if (!lt::Comm::world().is_root()) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
  }
  const int failed = RUN_ALL_TESTS();
  const bool all_passed = lt::Comm::world().all_ok(failed == 0);
  lt::Comm::finalize();
  return all_passed ? 0 : 1;
}
