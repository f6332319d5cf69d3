// Speed of the CPU kernels. One core: OMP_NUM_THREADS=1 build/bench/bench_ops
//   conv3x3 at 128x128 and 32x32, im2col against Winograd; with bias+ReLU fused; backward: the GFLOP/s
//   counter (2 flops per MAC of the direct convolution; this machine's Eigen GEMM peak is ~40 GFLOP/s)
//   linear+bias+ReLU over 120k points, fused and not; BN+ReLU fused and not (GB/s); semseg's fused
//   devoxelize+concat+head and not; the last BEV conv at the occupied cells against the whole map
//   voxelize / devoxelize of 120k points x 64 channels on a 128x128 grid (/0 scan order, /1 random cells)
//   a point layer and voxelize fused (inference) against the two ops
//   pillarization of 120k points (bevdet: pillar index and the 10 pillar features)
#include <benchmark/benchmark.h>

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>

#include "kernels/cpu/ops.hpp"
#include "src/common/allocator.hpp"
#include "src/common/rng.hpp"
#include "src/models/bevdet.hpp"
#include "src/synth/scene.hpp"

namespace {

std::vector<float> random_floats(size_t n, uint64_t seed) {
  lt::Rng rng(seed);
  std::vector<float> v(n);
  for (float& x : v) x = float(rng.uniform(-1, 1));
  return v;
}

// 3×3 stride-1 convolution forward, /C/size/path: path 0 im2col + GEMM, 1 Winograd F(2×2, 3×3) (what
// conv2d_forward takes at these shapes). GFLOP/s counts the direct convolution's 2 · MACs for both, so
// Winograd's figure is its effective rate (it does 2.25× fewer multiplications in its GEMMs).
void BM_Conv3x3Forward(benchmark::State& state) {
  const int channels = int(state.range(0)), size = int(state.range(1));
  const lt::ops::Conv2dShape s{1, channels, channels, size, size, 3, 1, 1};
  const auto x = random_floats(size_t(channels) * size * size, 1),
             w = random_floats(size_t(channels) * channels * 9, 2), b = random_floats(channels, 3);
  std::vector<float> y(x.size()), workspace;
  for (auto _ : state) {
    if (state.range(2) == 0)
      lt::ops::conv2d_forward_im2col(x.data(), w.data(), b.data(), y.data(), s, workspace);
    else
      lt::ops::conv2d_forward(x.data(), w.data(), b.data(), y.data(), s, workspace);
  }
  state.counters["GFLOP/s"] =
      benchmark::Counter(2.0 * double(s.macs()) * double(state.iterations()) * 1e-9, benchmark::Counter::kIsRate);
}
BENCHMARK(BM_Conv3x3Forward)
    ->Args({64, 128, 0})
    ->Args({64, 128, 1})
    ->Args({32, 128, 0})
    ->Args({32, 128, 1})
    ->Args({128, 32, 0})
    ->Args({128, 32, 1})
    ->Unit(benchmark::kMillisecond);

// The same with BatchNorm folded in: bias and ReLU in the tiles' epilogue (inference).
void BM_Conv3x3ReluForward(benchmark::State& state) {
  const int channels = int(state.range(0)), size = int(state.range(1));
  const lt::ops::Conv2dShape s{1, channels, channels, size, size, 3, 1, 1};
  const auto x = random_floats(size_t(channels) * size * size, 1),
             w = random_floats(size_t(channels) * channels * 9, 2), b = random_floats(channels, 3);
  std::vector<float> y(x.size()), workspace;
  for (auto _ : state) lt::ops::conv2d_relu_forward(x.data(), w.data(), b.data(), y.data(), s, workspace);
  state.counters["GFLOP/s"] =
      benchmark::Counter(2.0 * double(s.macs()) * double(state.iterations()) * 1e-9, benchmark::Counter::kIsRate);
}
BENCHMARK(BM_Conv3x3ReluForward)->Args({64, 128})->Args({32, 128})->Unit(benchmark::kMillisecond);

// Backward (input gradient by Winograd at these shapes, weight gradient by im2col + GEMM).
void BM_Conv3x3Backward(benchmark::State& state) {
  const int channels = int(state.range(0)), size = int(state.range(1));
  const lt::ops::Conv2dShape s{1, channels, channels, size, size, 3, 1, 1};
  const auto x = random_floats(size_t(channels) * size * size, 1),
             w = random_floats(size_t(channels) * channels * 9, 2), dy = random_floats(x.size(), 3);
  std::vector<float> dx(x.size()), dw(w.size()), db(channels), workspace;
  for (auto _ : state)
    lt::ops::conv2d_backward(x.data(), w.data(), dy.data(), dx.data(), dw.data(), db.data(), s, workspace);
  state.counters["GFLOP/s"] =
      benchmark::Counter(4.0 * double(s.macs()) * double(state.iterations()) * 1e-9, benchmark::Counter::kIsRate);
}
BENCHMARK(BM_Conv3x3Backward)->Args({64, 128})->Args({32, 128})->Unit(benchmark::kMillisecond);

// Linear + bias + ReLU over 120k points, /in/out: /0 fused (linear_relu_forward), /1 the unfused
// sequence it replaces (linear with bias, then a ReLU pass).
void BM_LinearRelu120k(benchmark::State& state) {
  const int in = int(state.range(0)), out = int(state.range(1));
  constexpr int64_t kRows = 120000;
  const auto x = random_floats(size_t(kRows) * in, 1), w = random_floats(size_t(in) * out, 2),
             b = random_floats(size_t(out), 3);
  std::vector<float> y(size_t(kRows) * out);
  for (auto _ : state) {
    if (state.range(2) == 0) {
      lt::ops::linear_relu_forward(x.data(), w.data(), b.data(), y.data(), kRows, in, out);
    } else {
      lt::ops::linear_forward(x.data(), w.data(), b.data(), y.data(), kRows, in, out);
      lt::ops::relu_forward(y.data(), y.data(), int64_t(y.size()));
    }
  }
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * double(kRows) * in * out * double(state.iterations()) * 1e-9,
                                                 benchmark::Counter::kIsRate);
}
BENCHMARK(BM_LinearRelu120k)
    ->Args({8, 32, 0})
    ->Args({8, 32, 1})
    ->Args({32, 32, 0})
    ->Args({32, 32, 1})
    ->Unit(benchmark::kMillisecond);

// The point layers' products, 120k × in → out: /0 linear_forward (the register-tiled skinny kernel), /1
// Eigen's GEMM (what linear_forward did before), /2 linear_backward's input gradient dy · W through
// the skinny kernel and its weight gradient x^T · dy (Eigen), timed together.
void BM_PointLinear120k(benchmark::State& state) {
  const int in = int(state.range(0)), out = int(state.range(1));
  constexpr int64_t kRows = 120000;
  const auto x = random_floats(size_t(kRows) * in, 1), w = random_floats(size_t(in) * out, 2),
             b = random_floats(size_t(out), 3), dy = random_floats(size_t(kRows) * out, 4);
  std::vector<float> y(size_t(kRows) * out), dx(x.size()), dw(w.size()), db(b.size());
  using Rows = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  for (auto _ : state) {
    if (state.range(2) == 0) {
      lt::ops::linear_forward(x.data(), w.data(), b.data(), y.data(), kRows, in, out);
    } else if (state.range(2) == 1) {
      Eigen::Map<Rows> Y(y.data(), kRows, out);
      Y.noalias() = Eigen::Map<const Rows>(x.data(), kRows, in) * Eigen::Map<const Rows>(w.data(), out, in).transpose();
      Y.rowwise() += Eigen::Map<const Eigen::RowVectorXf>(b.data(), out);
    } else {
      lt::ops::linear_backward(x.data(), w.data(), dy.data(), dx.data(), dw.data(), db.data(), kRows, in, out);
    }
    benchmark::DoNotOptimize(y.data());
  }
  const double passes = state.range(2) == 2 ? 2 : 1;  // backward: dx and dW
  state.counters["GFLOP/s"] = benchmark::Counter(
      2.0 * passes * double(kRows) * in * out * double(state.iterations()) * 1e-9, benchmark::Counter::kIsRate);
}
BENCHMARK(BM_PointLinear120k)
    ->ArgsProduct({{8, 32}, {32}, {0, 1, 2}})
    ->Args({32, 20, 0})
    ->Args({32, 20, 1})
    ->Args({64, 32, 0})
    ->Args({64, 32, 1})
    ->Args({64, 32, 2})
    ->Unit(benchmark::kMillisecond);

struct PointsOnGrid {
  static constexpr int kGrid = 128, kChannels = 64;
  static constexpr int64_t kPoints = 120000;
  lt::ops::CellIndex index;
  std::vector<float> features = random_floats(size_t(kPoints) * kChannels, 4);
  std::vector<float> grid = std::vector<float>(size_t(kGrid) * kGrid * kChannels);
  std::vector<int64_t> argmax;
  // scan_order: the points of synthetic scans, in scan order, 0.8 m cells over ±51.2 m (what training
  // sees); otherwise the worst case: every point in a uniformly random cell.
  explicit PointsOnGrid(bool scan_order) {
    std::vector<int64_t> cells;
    if (!scan_order) {
      lt::Rng rng(5);
      for (int64_t i = 0; i < kPoints; ++i) cells.push_back(int64_t(rng.below(uint64_t(kGrid) * kGrid)));
    }
    for (int64_t frame = 1; int64_t(cells.size()) < kPoints; ++frame) {
      const lt::Frame scan = lt::synth::synth_frame(1, frame, 1.0, lt::synth::SensorModel{});
      for (int64_t i = 0; i < scan.num_points() && int64_t(cells.size()) < kPoints; ++i) {
        const int x = int(std::floor((scan.points[4 * i] + 51.2f) / 0.8f));
        const int y = int(std::floor((scan.points[4 * i + 1] + 51.2f) / 0.8f));
        cells.push_back(x >= 0 && x < kGrid && y >= 0 && y < kGrid ? int64_t(y) * kGrid + x : -1);
      }
    }
    index = lt::ops::build_cell_index(cells, int64_t(kGrid) * kGrid);
    argmax.resize(size_t(index.occupied()) * kChannels);
  }
};

void BM_VoxelizeMax120kx64(benchmark::State& state) {
  PointsOnGrid data(state.range(0) == 0);
  for (auto _ : state)
    lt::ops::voxelize_max_forward(data.features.data(), data.index, data.kChannels, int64_t(data.kGrid) * data.kGrid,
                                  data.grid.data(), data.argmax.data());
  state.counters["occupied_cells"] = double(data.index.occupied());
}
BENCHMARK(BM_VoxelizeMax120kx64)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond);

// A point layer and voxelize in one pass (inference), 120k points of synthetic scans × in → 64 channels:
// /in/0 linear_relu_voxelize_max_forward keeping the points' output (semseg), /in/1 without it (bevdet's
// PFN), /in/2 the two ops it replaces (linear_relu_forward, then voxelize_max_forward with its arg-max).
// GFLOP/s of the layer's 2 · N · in · out.
void BM_LinearReluVoxelize120k(benchmark::State& state) {
  PointsOnGrid data(true);
  const int in = int(state.range(0)), out = data.kChannels;
  const int64_t rows = data.kPoints, cells_per_map = int64_t(data.kGrid) * data.kGrid;
  const auto x = random_floats(size_t(rows) * in, 6), w = random_floats(size_t(out) * in, 7),
             b = random_floats(size_t(out), 8);
  std::vector<float> y(size_t(rows) * out);
  for (auto _ : state) {
    if (state.range(1) == 2) {
      lt::ops::linear_relu_forward(x.data(), w.data(), b.data(), y.data(), rows, in, out);
      lt::ops::voxelize_max_forward(y.data(), data.index, out, cells_per_map, data.grid.data(), data.argmax.data());
    } else {
      lt::ops::linear_relu_voxelize_max_forward(x.data(), w.data(), b.data(), state.range(1) == 0 ? y.data() : nullptr,
                                                rows, in, out, data.index, cells_per_map, data.grid.data());
    }
    benchmark::DoNotOptimize(data.grid.data());
  }
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * double(rows) * in * out * double(state.iterations()) * 1e-9,
                                                 benchmark::Counter::kIsRate);
}
BENCHMARK(BM_LinearReluVoxelize120k)->ArgsProduct({{10, 32}, {0, 1, 2}})->Unit(benchmark::kMillisecond);

void BM_Devoxelize120kx64(benchmark::State& state) {
  PointsOnGrid data(state.range(0) == 0);
  std::vector<float> out(data.features.size());
  for (auto _ : state)
    lt::ops::devoxelize_forward(data.grid.data(), data.index, data.kChannels, int64_t(data.kGrid) * data.kGrid,
                                out.data());
}
BENCHMARK(BM_Devoxelize120kx64)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond);

// BatchNorm + ReLU over 120k points × 32 channels (training), forward (apply) and backward (sums and
// input gradient): /0 fused (batchnorm_relu_*), /1 the unfused passes (BN, then a ReLU pass; the ReLU's
// gradient pass, then BN's). GB/s counts the unfused passes' bytes for both.
void BM_BatchNormRelu120kx32(benchmark::State& state) {
  constexpr int64_t kRows = 120000;
  constexpr int kChannels = 32;
  const lt::ops::BatchNormShape s{kRows, kChannels, 1};
  const auto x = random_floats(size_t(kRows) * kChannels, 1), dy = random_floats(x.size(), 2);
  const auto gamma = random_floats(kChannels, 3), beta = random_floats(kChannels, 4);
  std::vector<float> mean(kChannels, 0.1f), invstd(kChannels, 1.2f), y(x.size()), g(x.size()), dx(x.size());
  std::vector<float> dgamma(kChannels), dbeta(kChannels);
  std::vector<double> sums(2 * kChannels + 1);
  sums.back() = double(kRows);  // the forward's count
  const bool fused = state.range(0) == 0;
  for (auto _ : state) {
    if (fused) {
      lt::ops::batchnorm_relu_apply(x.data(), mean.data(), invstd.data(), gamma.data(), beta.data(), y.data(), s);
      lt::ops::batchnorm_relu_backward_sums(x.data(), dy.data(), mean.data(), invstd.data(), gamma.data(), beta.data(),
                                            s, sums.data());
      lt::ops::batchnorm_relu_backward_apply(x.data(), dy.data(), mean.data(), invstd.data(), gamma.data(), beta.data(),
                                             sums.data(), dx.data(), dgamma.data(), dbeta.data(), s);
    } else {
      lt::ops::batchnorm_apply(x.data(), mean.data(), invstd.data(), gamma.data(), beta.data(), y.data(), s);
      lt::ops::relu_forward(y.data(), y.data(), int64_t(y.size()));
      lt::ops::relu_backward(y.data(), dy.data(), g.data(), int64_t(g.size()));
      lt::ops::batchnorm_backward_sums(x.data(), g.data(), mean.data(), invstd.data(), s, sums.data());
      lt::ops::batchnorm_backward_apply(x.data(), g.data(), mean.data(), invstd.data(), gamma.data(), sums.data(),
                                        dx.data(), dgamma.data(), dbeta.data(), s);
    }
  }
  // Unfused: apply 2 arrays, relu 2, relu backward 3, sums 2, input gradient 3.
  const double bytes = 12.0 * sizeof(float) * double(x.size());
  state.counters["GB/s"] = benchmark::Counter(bytes * double(state.iterations()) * 1e-9, benchmark::Counter::kIsRate);
}
BENCHMARK(BM_BatchNormRelu120kx32)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond);

// semseg_small's head on 120k scan points (grid 128², 32 BEV + 32 point channels, hidden 32, 20 classes):
// /0 devoxelize_head_forward, /1 the unfused sequence (devoxelize, concat, linear+bias+relu, linear).
// GFLOP/s counts the unfused MACs for both (the fused op does the BEV half once per occupied cell).
void BM_DevoxelizeHead120k(benchmark::State& state) {
  PointsOnGrid data(true);
  constexpr int kBev = 32, kPoint = 32, kHidden = 32, kClasses = 20;
  const int64_t n = data.kPoints, cells = int64_t(data.kGrid) * data.kGrid;
  const auto grid = random_floats(size_t(cells) * kBev, 6), point = random_floats(size_t(n) * kPoint, 7);
  std::vector<float> cell_rows(size_t(data.index.occupied()) * kBev);
  for (int64_t m = 0; m < data.index.occupied(); ++m)
    for (int c = 0; c < kBev; ++c)
      cell_rows[size_t(m * kBev + c)] = grid[size_t(c * cells + data.index.cells[size_t(m)])];
  const auto w1 = random_floats(size_t(kHidden) * (kBev + kPoint), 8), b1 = random_floats(kHidden, 9);
  const auto w2 = random_floats(size_t(kClasses) * kHidden, 10), b2 = random_floats(kClasses, 11);
  std::vector<float> logits(size_t(n) * kClasses), gathered(size_t(n) * kBev), cat(size_t(n) * (kBev + kPoint)),
      hidden(size_t(n) * kHidden);
  const lt::ops::PointHeadShape shape{kBev, kPoint, kHidden, kClasses};
  for (auto _ : state) {
    if (state.range(0) == 0) {
      lt::ops::devoxelize_head_forward(cell_rows.data(), data.index, point.data(), w1.data(), b1.data(), w2.data(),
                                       b2.data(), shape, logits.data());
    } else {
      lt::ops::devoxelize_forward(grid.data(), data.index, kBev, cells, gathered.data());
      lt::ops::concat_channels(gathered.data(), kBev, point.data(), kPoint, n, 1, cat.data());
      lt::ops::linear_relu_forward(cat.data(), w1.data(), b1.data(), hidden.data(), n, kBev + kPoint, kHidden);
      lt::ops::linear_forward(hidden.data(), w2.data(), b2.data(), logits.data(), n, kHidden, kClasses);
    }
  }
  const double macs = double(n) * ((kBev + kPoint) * kHidden + kHidden * kClasses);
  state.counters["GFLOP/s"] =
      benchmark::Counter(2.0 * macs * double(state.iterations()) * 1e-9, benchmark::Counter::kIsRate);
  state.counters["occupied_cells"] = double(data.index.occupied());
}
BENCHMARK(BM_DevoxelizeHead120k)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond);

// semseg_small's dec1 (3×3, 64 → 32 at 128²) with BN folded: /0 at the occupied cells of 120k scan points
// only (conv2d_relu_at_cells), /1 over the whole map (conv2d_relu_forward). GFLOP/s of the MACs done.
void BM_Conv3x3AtCells(benchmark::State& state) {
  PointsOnGrid data(true);
  const lt::ops::Conv2dShape s{1, 64, 32, data.kGrid, data.kGrid, 3, 1, 1};
  const auto x = random_floats(size_t(64) * data.kGrid * data.kGrid, 1), w = random_floats(size_t(64) * 32 * 9, 2),
             b = random_floats(32, 3);
  std::vector<float> y(size_t(32) * data.kGrid * data.kGrid), workspace;
  for (auto _ : state) {
    if (state.range(0) == 0)
      lt::ops::conv2d_relu_at_cells(x.data(), w.data(), b.data(), s, data.index, y.data());
    else
      lt::ops::conv2d_relu_forward(x.data(), w.data(), b.data(), y.data(), s, workspace);
  }
  const double macs = state.range(0) == 0 ? double(data.index.occupied()) * 32 * 64 * 9 : double(s.macs());
  state.counters["GFLOP/s"] =
      benchmark::Counter(2.0 * macs * double(state.iterations()) * 1e-9, benchmark::Counter::kIsRate);
  state.counters["occupied_cells"] = double(data.index.occupied());
}
BENCHMARK(BM_Conv3x3AtCells)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond);

void BM_BuildCellIndex120k(benchmark::State& state) {
  PointsOnGrid data(true);
  for (auto _ : state) benchmark::DoNotOptimize(lt::ops::build_cell_index(data.index.point_cell, 128 * 128));
}
BENCHMARK(BM_BuildCellIndex120k)->Unit(benchmark::kMillisecond);

// Pillarization (bevdet's input preparation without targets): 120k points in range, from synthetic
// scans, into /0 bevdet_small's 256 × 256 pillars of 0.32 m, /1 bevdet_kitti's 432 × 496 of 0.16 m.
void BM_Pillarize120k(benchmark::State& state) {
  lt::BevdetConfig config;
  if (state.range(0) == 1) config.point_range = {0, -39.68, -3, 69.12, 39.68, 1}, config.pillar_m = 0.16;
  lt::PointBatch batch;
  batch.frames = 1;
  for (int64_t frame = 1; batch.num_points() < 120000; ++frame) {
    const lt::Frame scan = lt::synth::synth_frame(1, frame, 1.0, lt::synth::SensorModel{});
    for (int64_t i = 0; i < scan.num_points() && batch.num_points() < 120000; ++i) {
      const float* p = &scan.points[size_t(4 * i)];
      const auto& r = config.point_range;
      if (p[0] < r[0] || p[0] >= r[3] || p[1] < r[1] || p[1] >= r[4] || p[2] < r[2] || p[2] >= r[5]) continue;
      batch.points.insert(batch.points.end(), p, p + 4);
      batch.frame_of.push_back(0);
    }
  }
  for (auto _ : state) benchmark::DoNotOptimize(lt::Bevdet::prepare(config, batch, false));
  state.counters["pillars"] = double(lt::Bevdet::prepare(config, batch, false).cells.occupied());
}
BENCHMARK(BM_Pillarize120k)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond);

// As lidartrain's main does.
const bool kept_freed_memory = (lt::keep_freed_memory(), true);

}  // namespace

BENCHMARK_MAIN();
