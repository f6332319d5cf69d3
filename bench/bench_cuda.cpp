// Speed of the CUDA backend's kernels on the GPU (kernels/backend.hpp), one entry per op at the sizes
// semseg_small and bevdet_small run; each skips (SkipWithError) where there is no GPU. Timings wait for
// the device (synchronize) each iteration, so they are kernel time plus launch latency. Counters: GB/s
// of the bytes an op must move at least, GFLOP/s for the GEMM-based ops; compare with the H100/H200's
// ~3.3–4.8 TB/s and ~60 TFLOP/s fp32 (non-tensor-core) peaks.
//   build/bench/bench_cuda  (on a machine with a GPU; scripts/gpu_check.sh runs it)
// The emulated build (kernels/cuda/emu) is not benchmarked: its speed means nothing.
#include <benchmark/benchmark.h>

#include <functional>
#include <memory>
#include <vector>

#include "kernels/backend.hpp"
#include "kernels/buffer.hpp"
#include "kernels/cuda/device.hpp"
#include "src/common/rng.hpp"

namespace {

using lt::Backend;
using lt::Buffer;

const Backend* gpu() {
  static const Backend* backend = lt::cuda_backend();
  return backend;
}

Buffer<float> random_buffer(const Backend& b, size_t n, uint64_t seed) {
  lt::Rng rng(seed);
  std::vector<float> host(n);
  for (float& x : host) x = float(rng.uniform(-1, 1));
  Buffer<float> buffer;
  buffer.upload(b, host);
  return buffer;
}

// Runs `op` per iteration on the GPU; bytes and flops per call give the rate counters.
void run_on_gpu(benchmark::State& state, double bytes, double flops, const std::function<void(const Backend&)>& op) {
  const Backend* b = gpu();
  if (!b) {
    state.SkipWithError(("no CUDA device: " + lt::cuda_summary()).c_str());
    return;
  }
  op(*b);  // warm-up (scratch allocation, cuBLAS handle)
  b->synchronize();
  for (auto _ : state) {
    op(*b);
    b->synchronize();
  }
  const double n = double(state.iterations());
  if (bytes > 0) state.counters["GB/s"] = benchmark::Counter(bytes * n * 1e-9, benchmark::Counter::kIsRate);
  if (flops > 0) state.counters["GFLOP/s"] = benchmark::Counter(flops * n * 1e-9, benchmark::Counter::kIsRate);
}

// 120k points in scan order on a 128 × 128 grid (semseg_small's), as the CPU benchmark's.
struct PointsOnGrid {
  static constexpr int kGrid = 128, kChannels = 32;
  static constexpr int64_t kPoints = 120000;
  lt::ops::CellIndex index;
  lt::CellIndexBuffers staging;
  lt::ops::CellIndexView view;
  explicit PointsOnGrid(const Backend& b) {
    lt::Rng rng(5);
    std::vector<int64_t> cells(kPoints);
    for (int64_t p = 0; p < kPoints; ++p) cells[size_t(p)] = (p / 4) % (kGrid * kGrid);  // ~4 points a cell
    index = lt::ops::build_cell_index(cells, int64_t(kGrid) * kGrid);
    view = lt::on_backend(b, index, staging);
  }
};

void BM_CudaGemm(benchmark::State& state) {
  const int64_t m = state.range(0), n = state.range(1), k = state.range(2);
  Buffer<float> a, b, c;
  run_on_gpu(state, 4.0 * double(m * k + k * n + m * n), 2.0 * double(m * n * k), [&](const Backend& be) {
    if (a.empty())
      a = random_buffer(be, size_t(m * k), 1), b = random_buffer(be, size_t(k * n), 2), c.resize(be, size_t(m * n));
    be.gemm(false, false, m, n, k, 1.f, a.data(), b.data(), 0.f, c.data());
  });
}
BENCHMARK(BM_CudaGemm)->Args({64, 16384, 576})->Args({120000, 32, 40})->Unit(benchmark::kMicrosecond);

void BM_CudaConv3x3(benchmark::State& state) {
  const int channels = int(state.range(0)), size = int(state.range(1)), batch = int(state.range(2));
  const lt::ops::Conv2dShape s{batch, channels, channels, size, size, 3, 1, 1};
  Buffer<float> x, w, y;
  run_on_gpu(state, 0, 2.0 * double(s.macs()), [&](const Backend& be) {
    if (x.empty())
      x = random_buffer(be, size_t(batch) * channels * size * size, 1),
      w = random_buffer(be, size_t(channels) * channels * 9, 2), y.resize(be, x.size());
    be.conv2d_forward(x.data(), w.data(), nullptr, y.data(), s);
  });
}
BENCHMARK(BM_CudaConv3x3)->Args({64, 128, 1})->Args({64, 128, 8})->Unit(benchmark::kMicrosecond);

void BM_CudaConv3x3Backward(benchmark::State& state) {
  const int channels = int(state.range(0)), size = int(state.range(1)), batch = int(state.range(2));
  const lt::ops::Conv2dShape s{batch, channels, channels, size, size, 3, 1, 1};
  Buffer<float> x, w, dy, dx, dw;
  run_on_gpu(state, 0, 4.0 * double(s.macs()), [&](const Backend& be) {
    if (x.empty())
      x = random_buffer(be, size_t(batch) * channels * size * size, 1),
      w = random_buffer(be, size_t(channels) * channels * 9, 2), dy = random_buffer(be, x.size(), 3),
      dx.resize(be, x.size()), dw.zeros(be, w.size());
    be.conv2d_backward(x.data(), w.data(), dy.data(), dx.data(), dw.data(), nullptr, s);
  });
}
BENCHMARK(BM_CudaConv3x3Backward)->Args({64, 128, 8})->Unit(benchmark::kMicrosecond);

void BM_CudaConvTranspose(benchmark::State& state) {
  const lt::ops::ConvTransposeShape s{8, 128, 64, 32, 32, 2};
  Buffer<float> x, w, y;
  run_on_gpu(state, 0, 2.0 * double(s.macs()), [&](const Backend& be) {
    if (x.empty())
      x = random_buffer(be, size_t(8) * 128 * 32 * 32, 1), w = random_buffer(be, size_t(128) * 64 * 4, 2),
      y.resize(be, size_t(8) * 64 * 64 * 64);
    be.conv_transpose_forward(x.data(), w.data(), nullptr, y.data(), s);
  });
}
BENCHMARK(BM_CudaConvTranspose)->Unit(benchmark::kMicrosecond);

void BM_CudaLinear(benchmark::State& state) {
  const int64_t rows = 8 * 120000;
  const int in = int(state.range(0)), out = int(state.range(1));
  Buffer<float> x, w, y;
  run_on_gpu(state, 4.0 * double(rows) * (in + out), 2.0 * double(rows) * in * out, [&](const Backend& be) {
    if (x.empty())
      x = random_buffer(be, size_t(rows * in), 1), w = random_buffer(be, size_t(in * out), 2),
      y.resize(be, size_t(rows * out));
    be.linear_forward(x.data(), w.data(), nullptr, y.data(), rows, in, out);
  });
}
BENCHMARK(BM_CudaLinear)->Args({8, 32})->Args({64, 32})->Unit(benchmark::kMicrosecond);

void BM_CudaBatchNorm(benchmark::State& state) {
  const lt::ops::BatchNormShape s{8, 64, 128 * 128};
  const size_t n = size_t(s.count()) * 64;
  Buffer<float> x, y, mean, invstd, gamma, beta, running_mean, running_var;
  Buffer<double> sums;
  run_on_gpu(state, 3.0 * 4.0 * double(n), 0, [&](const Backend& be) {
    if (x.empty()) {
      x = random_buffer(be, n, 1), y.resize(be, n), gamma = random_buffer(be, 64, 2), beta = random_buffer(be, 64, 3);
      mean.resize(be, 64), invstd.resize(be, 64), running_mean.zeros(be, 64), running_var.zeros(be, 64);
      sums.resize(be, 129);
    }
    be.batchnorm_sums(x.data(), s, sums.data());
    be.batchnorm_stats(sums.data(), 64, true, mean.data(), invstd.data(), running_mean.data(), running_var.data());
    be.batchnorm_apply(x.data(), mean.data(), invstd.data(), gamma.data(), beta.data(), y.data(), s);
  });
}
BENCHMARK(BM_CudaBatchNorm)->Unit(benchmark::kMicrosecond);

void BM_CudaReluAndAdd(benchmark::State& state) {
  const size_t n = size_t(8) * 64 * 128 * 128;
  Buffer<float> x, y;
  run_on_gpu(state, 5.0 * 4.0 * double(n), 0, [&](const Backend& be) {
    if (x.empty()) x = random_buffer(be, n, 1), y.resize(be, n);
    be.relu_forward(x.data(), y.data(), int64_t(n));
    be.add(y.data(), x.data(), int64_t(n));
  });
}
BENCHMARK(BM_CudaReluAndAdd)->Unit(benchmark::kMicrosecond);

void BM_CudaConcat(benchmark::State& state) {
  const int64_t outer = 8, inner = 128 * 128;
  Buffer<float> a, b, out;
  run_on_gpu(state, 2.0 * 4.0 * double(outer * 64 * inner), 0, [&](const Backend& be) {
    if (a.empty())
      a = random_buffer(be, size_t(outer * 32 * inner), 1), b = random_buffer(be, size_t(outer * 32 * inner), 2),
      out.resize(be, size_t(outer * 64 * inner));
    be.concat_channels(a.data(), 32, b.data(), 32, outer, inner, out.data());
  });
}
BENCHMARK(BM_CudaConcat)->Unit(benchmark::kMicrosecond);

void BM_CudaVoxelizeMax(benchmark::State& state) {
  std::unique_ptr<PointsOnGrid> points;
  Buffer<float> features, grid;
  Buffer<int64_t> argmax;
  const double bytes = 4.0 * double(PointsOnGrid::kPoints * PointsOnGrid::kChannels) * 2;
  run_on_gpu(state, bytes, 0, [&](const Backend& be) {
    if (!points) {
      points = std::make_unique<PointsOnGrid>(be);
      features = random_buffer(be, size_t(PointsOnGrid::kPoints * PointsOnGrid::kChannels), 1);
      grid.resize(be, size_t(PointsOnGrid::kGrid) * PointsOnGrid::kGrid * PointsOnGrid::kChannels);
      argmax.resize(be, size_t(points->index.occupied() * PointsOnGrid::kChannels));
    }
    be.voxelize_max_forward(features.data(), points->view, PointsOnGrid::kChannels,
                            int64_t(PointsOnGrid::kGrid) * PointsOnGrid::kGrid, grid.data(), argmax.data());
  });
}
BENCHMARK(BM_CudaVoxelizeMax)->Unit(benchmark::kMicrosecond);

void BM_CudaScatterMeanAndDevoxelize(benchmark::State& state) {
  std::unique_ptr<PointsOnGrid> points;
  Buffer<float> features, grid, mean, gathered;
  const double bytes = 4.0 * double(PointsOnGrid::kPoints * PointsOnGrid::kChannels) * 3;
  run_on_gpu(state, bytes, 0, [&](const Backend& be) {
    if (!points) {
      points = std::make_unique<PointsOnGrid>(be);
      features = random_buffer(be, size_t(PointsOnGrid::kPoints * PointsOnGrid::kChannels), 1);
      grid = random_buffer(be, size_t(PointsOnGrid::kGrid) * PointsOnGrid::kGrid * PointsOnGrid::kChannels, 2);
      mean.resize(be, size_t(points->index.occupied() * PointsOnGrid::kChannels));
      gathered.resize(be, features.size());
    }
    be.scatter_mean_forward(features.data(), points->view, PointsOnGrid::kChannels, mean.data());
    be.devoxelize_forward(grid.data(), points->view, PointsOnGrid::kChannels,
                          int64_t(PointsOnGrid::kGrid) * PointsOnGrid::kGrid, gathered.data());
  });
}
BENCHMARK(BM_CudaScatterMeanAndDevoxelize)->Unit(benchmark::kMicrosecond);

void BM_CudaCrossEntropy(benchmark::State& state) {
  const int64_t rows = 8 * 120000;
  Buffer<float> logits, dlogits;
  Buffer<uint8_t> labels;
  Buffer<double> loss;
  run_on_gpu(state, 2.0 * 4.0 * 20 * double(rows), 0, [&](const Backend& be) {
    if (logits.empty()) {
      logits = random_buffer(be, size_t(rows * 20), 1), dlogits.resize(be, logits.size()), loss.resize(be, 1);
      std::vector<uint8_t> host(static_cast<size_t>(rows));
      for (int64_t r = 0; r < rows; ++r) host[size_t(r)] = uint8_t(r % 20);
      labels.upload(be, host);
    }
    be.cross_entropy(logits.data(), labels.data(), rows, 20, nullptr, 0, dlogits.data(), loss.data());
  });
}
BENCHMARK(BM_CudaCrossEntropy)->Unit(benchmark::kMicrosecond);

void BM_CudaFocalAndL1Loss(benchmark::State& state) {
  const int64_t n = int64_t(8) * 3 * 128 * 128;
  Buffer<float> logits, targets, dlogits, pred, target, dpred;
  Buffer<double> loss;
  run_on_gpu(state, 3.0 * 4.0 * double(n), 0, [&](const Backend& be) {
    if (logits.empty()) {
      logits = random_buffer(be, size_t(n), 1), targets = random_buffer(be, size_t(n), 2),
      dlogits.resize(be, size_t(n));
      pred = random_buffer(be, 800, 3), target = random_buffer(be, 800, 4), dpred.resize(be, 800), loss.resize(be, 2);
    }
    be.focal_loss(logits.data(), targets.data(), n, dlogits.data(), loss.data());
    be.l1_loss(pred.data(), target.data(), 100, 8, dpred.data(), loss.data() + 1);
  });
}
BENCHMARK(BM_CudaFocalAndL1Loss)->Unit(benchmark::kMicrosecond);

void BM_CudaGatherPositions(benchmark::State& state) {
  const int64_t k = 800, plane = 128 * 128;
  Buffer<float> maps, rows, dmaps;
  Buffer<int64_t> positions;
  run_on_gpu(state, 0, 0, [&](const Backend& be) {
    if (maps.empty()) {
      maps = random_buffer(be, size_t(8 * 8 * plane), 1), rows.resize(be, size_t(k * 8)), dmaps.zeros(be, maps.size());
      std::vector<int64_t> host(static_cast<size_t>(k));
      for (int64_t i = 0; i < k; ++i) host[size_t(i)] = (i * 7919) % (8 * plane);
      positions.upload(be, host);
    }
    be.gather_positions_forward(maps.data(), positions.data(), k, 8, plane, rows.data());
    be.gather_positions_backward(rows.data(), positions.data(), k, 8, plane, dmaps.data());
  });
}
BENCHMARK(BM_CudaGatherPositions)->Unit(benchmark::kMicrosecond);

void BM_CudaMaxPool3x3(benchmark::State& state) {
  const int64_t n = int64_t(8) * 3 * 128 * 128;
  Buffer<float> x, y;
  run_on_gpu(state, 2.0 * 4.0 * double(n), 0, [&](const Backend& be) {
    if (x.empty()) x = random_buffer(be, size_t(n), 1), y.resize(be, size_t(n));
    be.max_pool3x3(x.data(), y.data(), 8 * 3, 128, 128);
  });
}
BENCHMARK(BM_CudaMaxPool3x3)->Unit(benchmark::kMicrosecond);

void BM_CudaBevIouMatrix(benchmark::State& state) {
  Buffer<float> boxes;
  Buffer<double> iou;
  run_on_gpu(state, 0, 0, [&](const Backend& be) {
    if (boxes.empty()) {
      lt::Rng rng(9);
      std::vector<float> host;
      for (int i = 0; i < 500; ++i)
        host.insert(host.end(), {float(rng.uniform(-40, 40)), float(rng.uniform(-40, 40)), 0.f, 4.f, 1.8f, 1.5f,
                                 float(rng.uniform(-3, 3))});
      boxes.upload(be, host);
      iou.resize(be, 500 * 500);
    }
    be.bev_iou_matrix(boxes.data(), 500, boxes.data(), 500, iou.data());
  });
}
BENCHMARK(BM_CudaBevIouMatrix)->Unit(benchmark::kMicrosecond);

// bevdet_small's decode of one frame: 3 heatmaps of 248 × 216 (random logits in [-1, 1], all above the
// threshold, so ~18,000 peaks: an untrained model's worst case), top 500; then NMS of 500 boxes.
void BM_CudaHeatmapTopK(benchmark::State& state) {
  const int64_t n = int64_t(3) * 248 * 216;
  Buffer<float> logits, scores;
  Buffer<int64_t> work, cells, count;
  run_on_gpu(state, 4.0 * double(n), 0, [&](const Backend& be) {
    if (logits.empty())
      logits = random_buffer(be, size_t(n), 3), work.resize(be, size_t(lt::heatmap_top_k_work(n))),
      cells.resize(be, 500), scores.resize(be, 500), count.resize(be, 1);
    be.heatmap_top_k(logits.data(), 3, 248, 216, 0.1f, 500, work.data(), cells.data(), scores.data(), count.data());
  });
}
BENCHMARK(BM_CudaHeatmapTopK)->Unit(benchmark::kMicrosecond);

void BM_CudaRotatedNms(benchmark::State& state) {
  Buffer<float> boxes;
  Buffer<int32_t> labels;
  Buffer<uint64_t> mask;
  Buffer<uint8_t> keep;
  run_on_gpu(state, 0, 0, [&](const Backend& be) {
    if (boxes.empty()) {
      lt::Rng rng(10);
      std::vector<float> host;
      std::vector<int32_t> host_labels;
      for (int i = 0; i < 500; ++i) {
        host.insert(host.end(), {float(rng.uniform(-40, 40)), float(rng.uniform(-40, 40)), 0.f, 4.f, 1.8f, 1.5f,
                                 float(rng.uniform(-3, 3))});
        host_labels.push_back(1 + i % 3);
      }
      boxes.upload(be, host);
      labels.upload(be, host_labels);
      mask.resize(be, 500 * 8);
      keep.resize(be, 500);
    }
    be.rotated_nms(boxes.data(), labels.data(), 500, 0.1, mask.data(), keep.data());
  });
}
BENCHMARK(BM_CudaRotatedNms)->Unit(benchmark::kMicrosecond);

void BM_CudaAdamWAndNorm(benchmark::State& state) {
  const int64_t n = 433492;  // semseg_small's parameters
  Buffer<float> p, g, m, v;
  Buffer<double> sum;
  run_on_gpu(state, 4.0 * 7 * double(n), 0, [&](const Backend& be) {
    if (p.empty())
      p = random_buffer(be, size_t(n), 1), g = random_buffer(be, size_t(n), 2), m.zeros(be, size_t(n)),
      v.zeros(be, size_t(n)), sum.resize(be, 1);
    lt::OptimizerStep step;
    step.lr = 1e-3f, step.bias1 = 0.1f, step.bias2 = 0.001f;
    be.sum_squares(g.data(), n, sum.data());
    be.adamw_update(p.data(), g.data(), m.data(), v.data(), n, step);
  });
}
BENCHMARK(BM_CudaAdamWAndNorm)->Unit(benchmark::kMicrosecond);

void BM_CudaCountInCostRange(benchmark::State& state) {
  const int64_t n = 120000;
  Buffer<float> points;
  Buffer<int64_t> count;
  run_on_gpu(state, 16.0 * double(n), 0, [&](const Backend& be) {
    if (points.empty()) points = random_buffer(be, size_t(4 * n), 1), count.resize(be, 1);
    be.count_in_cost_range(points.data(), n, count.data());
  });
}
BENCHMARK(BM_CudaCountInCostRange)->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
