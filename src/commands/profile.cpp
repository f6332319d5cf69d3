// lidartrain profile: parameters, MACs and forward/backward time per layer of a config's model, on a
// 120k-point frame (synthetic scans), in training mode; and the whole step, the input preparation
// (semseg: BEV cell index and point features; bevdet: pillarization and targets) and one inference
// (preparation, forward in eval mode, decode) as p50.
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>

#include "io/atomic_file.hpp"
#include "io/dataset.hpp"
#include "io/raw_formats.hpp"
#include "kernels/cpu/ops.hpp"
#include "src/cli/options.hpp"
#include "src/commands/commands.hpp"
#include "src/common/error.hpp"
#include "src/common/json.hpp"
#include "src/models/model.hpp"
#include "src/models/registry.hpp"
#include "src/synth/scene.hpp"
#include "src/train/config.hpp"
#include "src/train/data.hpp"
#include "src/train/device.hpp"

namespace lt {

int profile_main(int argc, char** argv, const Comm& comm) {
  po::options_description run("Profile");
  run.add_options()("points", po::value<int64_t>()->default_value(120000), "points in the profiled frame")(
      "input", po::value<std::string>()->value_name("FRAME.bin"),
      "profile a real scan (float32 x, y, z, intensity per point) instead of synthetic points; its training "
      "step labels every point as class 1 (timing only)")("repeat", po::value<int>()->default_value(3),
                                                          "timed steps (after one warm-up step)")(
      "device", po::value<std::string>()->value_name("DEV"),
      "auto | cpu | cuda (default: the config's train.device); on a GPU each layer is timed to its end")(
      "precision", po::value<std::string>()->value_name("P"),
      "fp32 | bf16 | fp16 (default: the config's train.precision): what the GEMMs read their inputs as")(
      "json", po::value<std::string>()->value_name("FILE"), "also write the table as JSON");
  po::options_description options;
  options.add(run).add(config_options());
  const ParsedCommand parsed = parse_command("profile", options, {}, argc, argv);
  if (parsed.help) {
    if (comm.is_root())
      std::cout << usage_text(
          "profile",
          "--config CFG [--points N | --input FRAME.bin] [--repeat R] [--device DEV] [--precision P] [--json FILE]",
          "Per-layer parameters, MACs and forward/backward time of one training step.", options);
    return kExitOk;
  }
  const auto& values = parsed.values;
  require_positive(values, "points");
  require_positive(values, "repeat");
  const TrainConfig config = train_config_from(values);
  if (config.threads > 0) omp_set_num_threads(config.threads);
  const int64_t wanted = values["points"].as<int64_t>();
  const int repeat = values["repeat"].as<int>();

  // One frame of `wanted` points in scan order, from synthetic scans (dense city scenes first), or the
  // real scan of --input.
  Frame frame;
  if (values.count("input")) {
    require(values["points"].defaulted(), "--points and --input: give one of them");
    const std::string input = values["input"].as<std::string>();
    frame.id = input;
    frame.points = read_point_file(input, 4, 1.f);
    validate_frame(frame, DatasetKind{}, input);
    frame.labels.assign(frame.points.size() / 4, 1);
  }
  for (int64_t f = 1; !values.count("input") && frame.num_points() < wanted; ++f) {
    const Frame scan = synth::synth_frame(1, f, 1.0, synth::SensorModel{});
    const int64_t take = std::min(scan.num_points(), wanted - frame.num_points());
    frame.points.insert(frame.points.end(), scan.points.begin(), scan.points.begin() + 4 * take);
    frame.labels.insert(frame.labels.end(), scan.labels.begin(), scan.labels.begin() + take);
    frame.boxes.insert(frame.boxes.end(), scan.boxes.begin(), scan.boxes.end());
    frame.box_labels.insert(frame.box_labels.end(), scan.box_labels.begin(), scan.box_labels.end());
  }
  const PointBatch batch = make_batch({frame});
  const std::unique_ptr<Model> model_ptr = make_model(config);
  Model& model = *model_ptr;
  const std::string device = values.count("device") ? values["device"].as<std::string>() : config.device;
  run_agreed(comm, [&] { model.set_backend(choose_device(device, comm.local_rank(), "--device")); });
  const Precision precision = values.count("precision")
                                  ? parse_precision(values["precision"].as<std::string>(), "--precision")
                                  : config.precision;
  use_precision(model.backend(), precision, "--precision");
  require_one_rank_per_gpu(comm, model.backend());
  model.set_layer_sync(true);
  model.init(config.seed);
  const auto seconds_since = [](std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  double step_s = 0, prepare_s = 0;
  std::vector<double> infer_s;
  for (int i = 0; i <= repeat; ++i) {
    if (i == 1) {
      model.reset_profile_times();
      pool_reset_peak(model.backend());
    }
    auto t0 = std::chrono::steady_clock::now();
    std::unique_ptr<ModelInput> input = model.prepare(batch, true);
    const double prepared = seconds_since(t0);
    model.params().zero_grads();
    const double normaliser = model.loss_normaliser(input->loss_weight);
    model.forward_loss(std::move(input), normaliser);
    model.backward();
    if (i > 0) step_s += seconds_since(t0), prepare_s += prepared;
  }
  std::vector<LayerProfile> training = model.profile();
  model.freeze_for_inference();  // as infer runs: the parameters stay on the device
  for (int i = 0; i <= repeat; ++i) {
    if (i == 1) model.reset_profile_times();  // after the warm-up (which folds the BatchNorms)
    const auto t0 = std::chrono::steady_clock::now();
    model.predict(batch);
    if (i > 0) infer_s.push_back(seconds_since(t0));
  }
  const std::vector<LayerProfile> inference = model.profile();
  std::sort(infer_s.begin(), infer_s.end());
  const double infer_p50_ms = 1e3 * infer_s[infer_s.size() / 2];
  if (!comm.is_root()) return kExitOk;

  const PoolStats memory = model.memory();
  std::printf("profile: %s on %s, %lld points, %d threads, mean of %d steps\n", model.name().c_str(),
              describe_device(model.backend()).c_str(), static_cast<long long>(batch.num_points()),
              omp_get_max_threads(), repeat);
  // GFLOP/s per layer (2 FLOPs a MAC, forward and backward's 2× the MACs over their time): what shows
  // where a device falls short of its peak.
  const auto gflops = [](double macs, double seconds) { return seconds > 0 ? 2 * macs / seconds * 1e-9 : 0.0; };
  // Training forward and backward, then inference (eval mode, BatchNorm folded, fused ops: its MACs are
  // those the fused ops do, e.g. semseg's head once per occupied cell for the BEV half).
  std::printf("%-14s %10s %12s %10s %10s %10s %10s %12s %10s %10s\n", "layer", "params", "MMACs", "fwd ms", "bwd ms",
              "fwd GF/s", "bwd GF/s", "infer MMACs", "infer ms", "infer GF/s");
  int64_t total_params = 0, total_macs = 0, total_infer_macs = 0;
  double total_fwd = 0, total_bwd = 0, total_infer = 0;
  for (size_t l = 0; l < training.size(); ++l) {
    const LayerProfile& layer = training[l];
    const double fwd = 1e3 * layer.forward_s / repeat, bwd = 1e3 * layer.backward_s / repeat;
    const double inf = 1e3 * inference[l].forward_s / repeat;
    std::printf("%-14s %10lld %12.1f %10.2f %10.2f %10.1f %10.1f %12.1f %10.2f %10.1f\n", layer.name.c_str(),
                static_cast<long long>(layer.params), double(layer.macs) * 1e-6, fwd, bwd,
                gflops(double(layer.macs), fwd * 1e-3), gflops(2 * double(layer.macs), bwd * 1e-3),
                double(inference[l].macs) * 1e-6, inf, gflops(double(inference[l].macs), inf * 1e-3));
    total_params += layer.params, total_macs += layer.macs, total_fwd += fwd, total_bwd += bwd;
    total_infer_macs += inference[l].macs, total_infer += inf;
  }
  std::printf("%-14s %10lld %12.1f %10.2f %10.2f %10s %10s %12.1f %10.2f\n", "total",
              static_cast<long long>(total_params), double(total_macs) * 1e-6, total_fwd, total_bwd, "", "",
              double(total_infer_macs) * 1e-6, total_infer);
  std::printf(
      "training step %.1f ms (of which input preparation %.2f ms); inference p50 %.1f ms; peak %s memory "
      "%.1f MB\n",
      1e3 * step_s / repeat, 1e3 * prepare_s / repeat, infer_p50_ms, model.backend().name,
      double(memory.peak_bytes) * 1e-6);
  if (values.count("json")) {
    JsonWriter json;
    json.begin_object().key("model").value(model.name()).key("points").value(batch.num_points());
    json.key("device").value(describe_device(model.backend())).key("peak_bytes").value(int64_t(memory.peak_bytes));
    json.key("threads").value(omp_get_max_threads()).key("step_ms").value(1e3 * step_s / repeat);
    json.key("prepare_ms").value(1e3 * prepare_s / repeat).key("infer_p50_ms").value(infer_p50_ms);
    json.key("layers").begin_array();
    for (size_t l = 0; l < training.size(); ++l) {
      const LayerProfile& layer = training[l];
      json.begin_object()
          .key("name")
          .value(layer.name)
          .key("params")
          .value(layer.params)
          .key("macs")
          .value(layer.macs)
          .key("forward_ms")
          .value(1e3 * layer.forward_s / repeat)
          .key("backward_ms")
          .value(1e3 * layer.backward_s / repeat)
          .key("infer_macs")
          .value(inference[l].macs)
          .key("infer_ms")
          .value(1e3 * inference[l].forward_s / repeat)
          .end_object();
    }
    json.end_array().key("params").value(total_params).key("macs").value(total_macs).end_object();
    write_text_file_atomically(values["json"].as<std::string>(), json.str() + "\n");
  }
  return kExitOk;
}

}  // namespace lt
