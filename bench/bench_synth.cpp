// Speed of the synthetic LiDAR and of shard writing, one core (OMP_NUM_THREADS=1 for the write).
//   build/bench/bench_synth      frames/s is the items_per_second column
#include <benchmark/benchmark.h>

#include <filesystem>

#include "io/dataset.hpp"
#include "kernels/cpu/points.hpp"
#include "src/synth/scene.hpp"

namespace {

void BM_SynthFrame(benchmark::State& state) {
  const lt::synth::SensorModel sensor;
  const double skew = double(state.range(0));
  int64_t frame = 0, points = 0;
  for (auto _ : state) {
    const lt::Frame f = lt::synth::synth_frame(1, frame++, skew, sensor);
    points += f.num_points();
    benchmark::DoNotOptimize(f.points.data());
  }
  state.SetItemsProcessed(frame);
  state.counters["points_per_frame"] = double(points) / double(frame);
}
BENCHMARK(BM_SynthFrame)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond);

void BM_SceneOnly(benchmark::State& state) {
  int64_t frame = 0;
  for (auto _ : state) benchmark::DoNotOptimize(lt::synth::make_scene(1, frame++, 1.0, 1.73f).prisms.size());
  state.SetItemsProcessed(frame);
}
BENCHMARK(BM_SceneOnly)->Unit(benchmark::kMicrosecond);

void BM_WriteShard32Frames(benchmark::State& state) {
  const lt::synth::SensorModel sensor;
  std::vector<lt::Frame> frames;
  int64_t bytes = 0;
  for (int f = 0; f < 32; ++f) {
    frames.push_back(lt::synth::synth_frame(1, f, 1.0, sensor));
    bytes += int64_t(frames.back().points.size() * 4 + frames.back().labels.size());
  }
  const std::string path = (std::filesystem::temp_directory_path() / "lidartrain_bench_shard.h5").string();
  for (auto _ : state) lt::write_shard(path, frames, lt::DatasetKind{true, true}, "bench");
  std::filesystem::remove(path);
  state.SetBytesProcessed(bytes * int64_t(state.iterations()));
  state.SetItemsProcessed(32 * int64_t(state.iterations()));
}
BENCHMARK(BM_WriteShard32Frames)->Unit(benchmark::kMillisecond);

void BM_CostCount120k(benchmark::State& state) {
  const lt::Frame f = lt::synth::synth_frame(1, 0, 1.0, lt::synth::SensorModel{});
  for (auto _ : state) benchmark::DoNotOptimize(lt::count_points_in_cost_range(f.points.data(), f.num_points()));
  state.SetItemsProcessed(f.num_points() * int64_t(state.iterations()));
}
BENCHMARK(BM_CostCount120k)->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
