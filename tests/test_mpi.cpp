// Tests that need several ranks; ctest runs this binary under `mpirun -np 2` and `-np 4 --oversubscribe`.
#include <gtest/gtest.h>
#include <mpi.h>

#include <cerrno>
#include <filesystem>
#include <functional>

#include "io/checkpoint.hpp"
#include "io/dataset.hpp"
#include "io/sharded_writer.hpp"
#include "mpi/balance.hpp"
#include "mpi/comm.hpp"
#include "mpi/grad_buckets.hpp"
#include "mpi/nccl_emu.hpp"
#include "mpi/reduce_backend.hpp"
#include "src/common/error.hpp"
#include "src/common/rng.hpp"
#include "src/nn/layers.hpp"

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
  const Reports reports = run_failing_upper_half(
      comm, [](int rank) { return "bad on rank " + std::to_string(rank); }, &message);
  const int failing = comm.size() - comm.size() / 2;
  EXPECT_EQ(reports.reported, failing);
  EXPECT_EQ(reports.quiet, comm.size() - failing);
  if (comm.rank() >= comm.size() / 2) {
    EXPECT_EQ(message, "bad on rank " + std::to_string(comm.rank()));
  }
}

TEST(Comm, AnErrorEveryFailingRankSharesIsReportedOnce) {
  const Comm comm = Comm::world();
  std::string message;
  const Reports reports = run_failing_upper_half(
      comm, [](int) { return std::string("bad config key"); }, &message);
  EXPECT_EQ(reports.reported, 1);
  EXPECT_EQ(reports.quiet, comm.size() - 1);
  if (comm.rank() == comm.size() / 2) {
    EXPECT_EQ(message, "bad config key");
  }
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

TEST(Comm, SpreadAndGatherText) {
  const Comm comm = Comm::world();
  const Comm::Spread spread = comm.spread({double(comm.rank()), 5.0});
  EXPECT_EQ(spread.min[0], 0.0);
  EXPECT_EQ(spread.max[0], double(comm.size() - 1));
  EXPECT_DOUBLE_EQ(spread.mean[0], double(comm.size() - 1) / 2);
  EXPECT_EQ(spread.min[1], 5.0);
  EXPECT_EQ(spread.max[1], 5.0);
  const std::vector<std::string> texts = comm.gather_text(std::string(size_t(comm.rank()), 'x'), 0);
  if (comm.is_root()) {
    ASSERT_EQ(int(texts.size()), comm.size());
    for (int r = 0; r < comm.size(); ++r) EXPECT_EQ(texts[size_t(r)], std::string(size_t(r), 'x'));
  } else {
    EXPECT_TRUE(texts.empty());
  }
  EXPECT_GE(comm.local_rank(), 0);
  EXPECT_LT(comm.local_rank(), comm.local_size());
  EXPECT_EQ(comm.sum(int64_t(comm.local_size())), int64_t(comm.size()) * comm.size());  // one node here
}

TEST(GradientAllReduce, BucketsPostedDuringBackwardSumEveryRanksGradients) {
  const Comm comm = Comm::world();
  const auto backend = make_mpi_reduce_backend(comm);
  const std::vector<int64_t> starts = {0, 1000, 1500, 4000, 4100};
  constexpr int64_t kTotal = 10000;
  GradientBuckets buckets(*backend, starts, kTotal, 2000 * sizeof(float));
  std::vector<float> grads(kTotal);
  for (int step = 0; step < 3; ++step) {
    for (int64_t i = 0; i < kTotal; ++i) grads[size_t(i)] = float((comm.rank() + 1) * (i % 7 + step));
    buckets.begin_step(grads.data());
    for (size_t t = starts.size(); t-- > 0;) buckets.grads_ready(starts[t]);  // backward, layer by layer
    for (int b = 0; b < int(buckets.buckets().size()); ++b) buckets.wait(b);
    const float rank_sum = float(comm.size() * (comm.size() + 1) / 2);
    for (int64_t i = 0; i < kTotal; ++i) ASSERT_EQ(grads[size_t(i)], rank_sum * float(i % 7 + step)) << i;
  }
}

// SyncBN over the ranks' slices of one batch equals BN over the whole batch in one process: outputs,
// input gradients and (summed over ranks) parameter gradients. The last rank holds no rows at all.
TEST(SyncBatchNorm, RanksSlicesMatchOneBatchNormOverTheWholeBatch) {
  const Comm comm = Comm::world();
  const auto backend = make_mpi_reduce_backend(comm);
  constexpr int kChannels = 5;
  constexpr int64_t kRows = 37;
  std::vector<float> x(kRows * kChannels), dy(x.size());
  Rng rng(11);
  for (size_t i = 0; i < x.size(); ++i)
    x[i] = float(rng.normal() * 2 + double(i % kChannels)), dy[i] = float(rng.normal());
  const auto make_bn = [](ParamStore& params, ParamStore& buffers, BatchNorm& bn) {
    bn.declare(params, buffers, "bn", kChannels);
    params.allocate(true);
    buffers.allocate(false);
    bn.init(params, buffers);
    for (int c = 0; c < kChannels; ++c)
      params.value(bn.weight)[c] = 1.f + 0.1f * float(c), params.value(bn.bias)[c] = 0.2f;
  };
  ParamStore full_params, full_buffers;
  BatchNorm full;
  make_bn(full_params, full_buffers, full);
  std::vector<float> y_full(x.size()), dx_full(x.size());
  const DeviceParams full_on_cpu = host_params(full_params, full_buffers);
  full.forward(full_on_cpu, x.data(), {kRows, kChannels, 1}, true, y_full.data());
  full.backward(full_on_cpu, x.data(), dy.data(), {kRows, kChannels, 1}, dx_full.data());

  // Rows split over all ranks but the last (which takes part with none), or all on one rank alone.
  const int holders = std::max(1, comm.size() - 1);
  const int64_t first = comm.rank() < holders ? kRows * comm.rank() / holders : kRows;
  const int64_t end = comm.rank() < holders ? kRows * (comm.rank() + 1) / holders : kRows;
  const int64_t rows = end - first;
  ParamStore params, buffers;
  BatchNorm synced;
  make_bn(params, buffers, synced);
  synced.sync = [&](double* values, int64_t count) { backend->sum(values, count); };
  std::vector<float> y(size_t(rows) * kChannels), dx(y.size());
  const DeviceParams on_cpu = host_params(params, buffers);
  synced.forward(on_cpu, x.data() + first * kChannels, {rows, kChannels, 1}, true, y.data());
  synced.backward(on_cpu, x.data() + first * kChannels, dy.data() + first * kChannels, {rows, kChannels, 1}, dx.data());
  for (int64_t i = 0; i < rows * kChannels; ++i) {
    EXPECT_NEAR(y[size_t(i)], y_full[size_t(first * kChannels + i)], 1e-5) << i;
    EXPECT_NEAR(dx[size_t(i)], dx_full[size_t(first * kChannels + i)], 1e-5) << i;
  }
  // Running statistics are the global batch's on every rank.
  for (int c = 0; c < kChannels; ++c) {
    EXPECT_NEAR(buffers.value(synced.running_mean)[c], full_buffers.value(full.running_mean)[c], 1e-5);
    EXPECT_NEAR(buffers.value(synced.running_var)[c], full_buffers.value(full.running_var)[c], 1e-5);
  }
  std::vector<double> param_grads(params.grads().begin(), params.grads().end());
  comm.sum_in_place(param_grads.data(), int64_t(param_grads.size()));
  for (size_t i = 0; i < param_grads.size(); ++i) EXPECT_NEAR(param_grads[i], full_params.grads()[i], 1e-4) << i;
}

// A checkpoint written with parallel HDF5 (each rank its share of every dataset's rows) reads back whole
// and equal, including datasets with fewer rows than ranks and an empty one.
TEST(Checkpoint, EveryRankWritesTheReplicatedStateOnceAndItReadsBackWhole) {
  const Comm comm = Comm::world();
  // Tensors of 7 and 130 rows and one of a single row (fewer rows than ranks).
  const auto declare = [](ParamStore& params, ParamStore& buffers) {
    params.add("w", {7, 3});
    params.add("b", {1});
    params.add("v", {130});
    buffers.add("running_mean", {2});
    params.allocate(true);
    buffers.allocate(false);
  };
  ParamStore params, buffers;
  declare(params, buffers);
  for (size_t i = 0; i < params.values().size(); ++i) params.values()[i] = float(i) * 0.5f - 3;
  buffers.values() = {1.5f, -2.5f};
  std::vector<float> exp_avg(params.values().size());
  for (size_t i = 0; i < exp_avg.size(); ++i) exp_avg[i] = float(i) / 7;
  CheckpointMeta meta;
  meta.model = "test";
  meta.step = 5;
  meta.world_size = comm.size();
  meta.created = comm.broadcast_text("2026-01-01T00:00:00Z", 0);
  meta.optimizer_type = "sgd";
  CheckpointState state;
  state.step = 5, state.samples_seen = 40, state.global_batch = 8;
  const std::string path = shared_dir("ckpt") + ".h5";
  write_checkpoint(path, meta, params, buffers, {{"momentum_buffer", &exp_avg}}, state, &comm);
  EXPECT_FALSE(fs::exists(path + ".tmp"));
  ParamStore read_params, read_buffers;
  declare(read_params, read_buffers);
  std::vector<float> read_avg(exp_avg.size());
  verify_checkpoint(path);
  read_checkpoint_tensors(path, read_params, read_buffers, {{"momentum_buffer", &read_avg}});
  EXPECT_EQ(read_params.values(), params.values());
  EXPECT_EQ(read_buffers.values(), buffers.values());
  EXPECT_EQ(read_avg, exp_avg);
  const CheckpointState read_state = read_checkpoint_state(path);
  EXPECT_EQ(read_state.samples_seen, 40);
  EXPECT_TRUE(read_state.cost_model_history.empty());
  comm.barrier();
  if (comm.is_root()) fs::remove(path);
}

// A write error on one rank (a full disk under rank 1's shard, say) is a WriteError on rank 0 naming
// that rank, and PeerFailed with kExitWriteFailed on every other: the job exits 74 with one line.
TEST(Comm, AWriteErrorOnAnyRankIsReportedByRankZeroWithTheRanksThatSawIt) {
  const Comm comm = Comm::world();
  const int failing = comm.size() - 1;
  std::string message, ranks;
  int exit_code = 0;
  try {
    run_agreed(comm, [&] {
      if (comm.rank() == failing) throw WriteError::os("shard-00001.h5.tmp", "write", ENOSPC);
      if (comm.rank() == 0 && comm.size() > 2) throw InputError("a plain error elsewhere");
    });
  } catch (const WriteError& e) {
    message = e.what();
    ranks = e.ranks;
    exit_code = kExitWriteFailed;
  } catch (const PeerFailed& e) {
    exit_code = e.exit_code;
  }
  EXPECT_EQ(exit_code, kExitWriteFailed);
  if (comm.is_root()) {
    EXPECT_EQ(message, "shard-00001.h5.tmp: write failed: No space left on device");
    EXPECT_EQ(ranks, "rank " + std::to_string(failing));
  }
}

// The checkpoint's temporary file is /dev/full: rank 0's write fails with ENOSPC; every rank leaves with
// the error (none waits in a collective), nothing is left at the path, and the ranks go on together.
TEST(Checkpoint, AFullDiskIsAWriteErrorOnEveryRankAndNoRankWaits) {
  const Comm comm = Comm::world();
  ParamStore params, buffers;
  params.add("w", {64, 3});
  params.allocate(true);
  buffers.allocate(false);
  CheckpointMeta meta;
  meta.model = "test";
  const std::string path = shared_dir("full_ckpt") + ".h5";
  if (comm.is_root()) fs::create_symlink("/dev/full", path + ".tmp");
  comm.barrier();
  std::string message;
  int exit_code = 0;
  try {
    write_checkpoint(path, meta, params, buffers, {}, {}, &comm);
  } catch (const WriteError& e) {
    message = e.what();
    exit_code = kExitWriteFailed;
  } catch (const PeerFailed& e) {
    exit_code = e.exit_code;
  }
  EXPECT_EQ(exit_code, kExitWriteFailed);
  if (comm.is_root()) {
    EXPECT_EQ(message, path + ".tmp: write failed: No space left on device");
  }
  EXPECT_EQ(comm.sum(int64_t(1)), comm.size());  // every rank is here
  EXPECT_FALSE(fs::exists(path));
  EXPECT_FALSE(fs::is_symlink(path + ".tmp"));
}

// Every rank observes its own steps of a known cost law; after one refit every rank has the same
// coefficients, and they are the law's.
TEST(CostModel, RefitRecoversPerPointAndPerFrameTimesFromEveryRanksSteps) {
  const Comm comm = Comm::world();
  CostModel model;
  EXPECT_FALSE(model.refit(comm));  // nothing observed
  for (int step = 0; step < 6; ++step) {
    const double frames = 1 + (step + comm.rank()) % 3, points = 1e5 * frames + 3e4 * ((step * 7 + comm.rank()) % 5);
    model.observe(points, frames, 2e-6 * points + 0.05 * frames);
  }
  model.observe(0, 0, 0.001);  // a rank with no frames says nothing
  ASSERT_TRUE(model.refit(comm));
  EXPECT_NEAR(model.per_point, 2e-6, 1e-12);
  EXPECT_NEAR(model.per_frame, 0.05, 1e-8);
  EXPECT_EQ(comm.max(model.per_point), -comm.max(-model.per_point));  // the same on every rank
}

TEST(CostModel, ANegativeFittedTermIsClampedToZero) {
  const Comm comm = Comm::world();
  CostModel model;
  // Time superlinear in points at two frames a step: the unconstrained fit wants a negative per-frame term.
  for (int step = 0; step < 8; ++step) {
    const double points = 1e5 + 2e4 * ((step + comm.rank()) % 4);
    model.observe(points, 2, 1e-11 * points * points);
  }
  ASSERT_TRUE(model.refit(comm));
  EXPECT_GT(model.per_point, 0);
  EXPECT_EQ(model.per_frame, 0);
}

// The emulated NCCL (mpi/nccl_emu.hpp) captured in a graph, as SyncBN's sums are with train.cuda_graphs:
// the capture sums nothing, each launch sums what the buffer holds then; and a graph's collective matched
// with another rank's eager one is an error on every rank (NCCL: captured or not must be uniform).
TEST(EmulatedNccl, ACapturedAllReduceSumsAtEachLaunchAndMatchesOnlyTheOtherRanksGraphs) {
  const Comm comm = Comm::world();
  ncclUniqueId id{};
  if (comm.is_root()) {
    ASSERT_EQ(ncclGetUniqueId(&id), ncclSuccess);
  }
  MPI_Bcast(&id, int(sizeof id), MPI_BYTE, 0, MPI_COMM_WORLD);
  ncclComm_t nccl = nullptr;
  ASSERT_EQ(ncclCommInitRank(&nccl, comm.size(), id, comm.rank()), ncclSuccess);
  cudaStream_t stream = nullptr;
  cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking);
  double* x = nullptr;
  cudaMalloc(reinterpret_cast<void**>(&x), 2 * sizeof(double));
  const auto values = [&] {
    std::vector<double> host(2);
    cudaStreamSynchronize(stream);
    cudaMemcpy(host.data(), x, sizeof(double) * 2, cudaMemcpyDeviceToHost);
    return host;
  };
  const std::vector<double> mine = {double(comm.rank() + 1), 10.0 * (comm.rank() + 1)};
  cudaMemcpy(x, mine.data(), sizeof(double) * 2, cudaMemcpyHostToDevice);

  ASSERT_EQ(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal), cudaSuccess);
  ASSERT_EQ(ncclAllReduce(x, x, 2, ncclFloat64, ncclSum, nccl, stream), ncclSuccess);
  cudaGraph_t graph = nullptr;
  ASSERT_EQ(cudaStreamEndCapture(stream, &graph), cudaSuccess);
  cudaGraphExec_t exec = nullptr;
  ASSERT_EQ(cudaGraphInstantiate(&exec, graph, 0), cudaSuccess);
  cudaGraphDestroy(graph);
  EXPECT_EQ(values(), mine);  // captured, not run
  const double ranks = comm.size(), sum = ranks * (ranks + 1) / 2;
  ASSERT_EQ(cudaGraphLaunch(exec, stream), cudaSuccess);
  EXPECT_EQ(values(), (std::vector<double>{sum, 10 * sum}));
  ASSERT_EQ(cudaGraphLaunch(exec, stream), cudaSuccess);
  EXPECT_EQ(values(), (std::vector<double>{ranks * sum, 10 * ranks * sum}));

  // Rank 0 eagerly, the others from the graph: the emulation fails it on every rank.
  if (comm.is_root()) {
    EXPECT_EQ(ncclAllReduce(x, x, 2, ncclFloat64, ncclSum, nccl, stream), ncclInvalidUsage);
  } else {
    ASSERT_EQ(cudaGraphLaunch(exec, stream), cudaSuccess);
  }
  cudaStreamSynchronize(stream);
  ncclResult_t async_error = ncclSuccess;
  ASSERT_EQ(ncclCommGetAsyncError(nccl, &async_error), ncclSuccess);
  EXPECT_EQ(async_error, ncclInvalidUsage);

  cudaGraphExecDestroy(exec);
  cudaFree(x);
  cudaStreamDestroy(stream);
  ncclCommDestroy(nccl);
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
