// lidartrain infer: one frame through a checkpoint. semseg: a SemanticKITTI .label file; bevdet: boxes
// as text — KITTI label_2 lines in the camera frame with --calib, else one LiDAR-frame box per line.
// --bench N times N runs (preparation, forward and, for bevdet, decode) and prints p50/p99.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <optional>

#include "io/atomic_file.hpp"
#include "io/raw_formats.hpp"
#include "src/cli/options.hpp"
#include "src/commands/commands.hpp"
#include "src/commands/infer_dataset.hpp"
#include "src/common/error.hpp"
#include "src/common/stats.hpp"
#include "src/models/model.hpp"
#include "src/models/registry.hpp"
#include "src/train/data.hpp"
#include "src/train/device.hpp"
#include "src/train/evaluate.hpp"

namespace lt {

int infer_main(int argc, char** argv, const Comm& comm) {
  po::options_description options("Options");
  options.add_options()("checkpoint", po::value<std::string>()->required()->value_name("CKPT"), "checkpoint file")(
      "input", po::value<std::string>()->value_name("FRAME.bin"),
      "KITTI/SemanticKITTI .bin (x, y, z, reflectance float32)")(
      "data", po::value<std::string>()->value_name("DIR"),
      "instead of --input: every frame of this dataset, split over the job's ranks; --out is then a directory "
      "(semseg: sequences/<seq>/predictions/<frame>.label; bevdet: boxes/<frame id>.txt and label_2/; "
      "predictions/rank-*.h5 for eval --predictions; manifest.json); a rerun skips the frames already done")(
      "force", "with --data: write into an --out that holds another checkpoint's predictions")(
      "boxes", po::value<std::string>()->default_value("auto")->value_name("FORMAT"),
      "bevdet with --data: auto (KITTI label_2 results too where the dataset has cameras: calibrations with P2) | "
      "label_2 | lidar")(
      "out", po::value<std::string>()->value_name("FILE"),
      "semseg: SemanticKITTI .label output (uint32 raw ids through the inverse learning_map); bevdet: the boxes "
      "as text (default: standard output); with --data, the output directory")(
      "calib", po::value<std::string>()->value_name("CALIB.txt"),
      "bevdet: KITTI calib file with P2; boxes are written as label_2 result lines (camera frame, 2D box, alpha)")(
      "image-size", po::value<std::string>()->value_name("WxH"),
      "with --calib: the camera image's size in pixels (default 1242x375, KITTI's)")(
      "bench", po::value<int>()->default_value(0)->value_name("N"), "time N runs and print latency p50/p99")(
      "device", po::value<std::string>()->default_value("auto")->value_name("DEV"),
      "auto | cpu | cuda (auto: the GPU when there is one)")(
      "precision", po::value<std::string>()->default_value("fp32")->value_name("P"),
      "fp32 | bf16 | fp16: what the GEMMs read their inputs as (cuda; accumulation in fp32)")(
      "json", po::value<std::string>()->value_name("FILE"), "with --bench: write the latencies as JSON");
  const ParsedCommand parsed = parse_command("infer", options, {}, argc, argv);
  if (parsed.help) {
    if (comm.is_root())
      std::cout << usage_text(
          "infer",
          "--checkpoint CKPT (--input FRAME.bin [--out FILE] [--calib CALIB [--image-size WxH]] [--bench N] | --data "
          "DIR --out DIR "
          "[--boxes FORMAT] [--force]) [--device DEV] [--precision P]",
          "Segments one frame (semseg) or detects its objects (bevdet); with --data, every frame of a dataset.",
          options);
    return kExitOk;
  }
  const auto& values = parsed.values;
  require_non_negative(values, "bench");
  if (values.count("data")) {
    require(!values.count("input"), "--data and --input: give one of them");
    require(values.count("out"), "--data: --out DIR is needed (the output directory)");
    require(!values.count("calib") && !values.count("image-size") && values["bench"].as<int>() == 0 &&
                !values.count("json"),
            "--calib, --image-size, --bench and --json are for one frame (--input), not --data");
    DatasetInference job;
    job.checkpoint = values["checkpoint"].as<std::string>();
    job.data = values["data"].as<std::string>();
    job.out = values["out"].as<std::string>();
    job.device = values["device"].as<std::string>();
    job.precision = parse_precision(values["precision"].as<std::string>(), "--precision");
    job.force = values.count("force") > 0;
    job.boxes = values["boxes"].as<std::string>();
    return infer_dataset(job, comm);
  }
  require(values.count("input"), "--input FRAME.bin or --data DIR: what to infer on");
  require(!values.count("force"), "--force is for --data");
  require(values["boxes"].defaulted(), "--boxes is for --data (with --input, --calib gives label_2 lines)");
  const std::string input = values["input"].as<std::string>();
  const std::unique_ptr<Model> model = load_model(values["checkpoint"].as<std::string>());
  run_agreed(comm, [&] {
    model->set_backend(choose_device(values["device"].as<std::string>(), comm.local_rank(), "--device"));
  });
  use_precision(model->backend(), parse_precision(values["precision"].as<std::string>(), "--precision"), "--precision");
  require_one_rank_per_gpu(comm, model->backend());
  model->freeze_for_inference();
  const bool boxes = model->output() == ModelOutput::boxes;
  require(boxes || !values.count("calib"),
          "--calib: only for a " + model_names(ModelOutput::boxes) + " checkpoint (this one is " + model->name() + ")");
  require(values.count("calib") || !values.count("image-size"), "--image-size: only with --calib");
  std::optional<KittiCalib> calib;
  KittiCamera camera;
  if (values.count("calib")) {
    const std::string path = values["calib"].as<std::string>();
    std::vector<double> p2;
    calib = read_kitti_calib(path, &p2);
    require(!p2.empty(), path + ": no P2 (the camera's projection), which label_2 results need for their 2D boxes");
    std::copy(p2.begin(), p2.end(), camera.p2.begin());
    camera.width = kKittiImageWidth, camera.height = kKittiImageHeight;
    if (values.count("image-size")) {
      const std::string size = values["image-size"].as<std::string>();
      long width = 0, height = 0;
      char end = 0;
      require(std::sscanf(size.c_str(), "%ldx%ld%c", &width, &height, &end) == 2 && width >= 1 && height >= 1 &&
                  width <= 65535 && height <= 65535,
              "--image-size: '" + size + "' is not WIDTHxHEIGHT in pixels, each 1..65535");
      camera.width = int(width), camera.height = int(height);
    }
  }
  Frame frame;
  frame.id = input;
  frame.points = read_point_file(input, 4, 1.f);
  validate_frame(frame, DatasetKind{}, input);
  const PointBatch batch = make_batch({frame});
  // One run: what --bench times.
  Prediction prediction;
  const auto run = [&] { prediction = std::move(model->predict(batch).front()); };
  run();
  if (!comm.is_root()) return kExitOk;

  const std::vector<Detection>& detections = prediction.detections;
  if (!boxes && values.count("out")) {
    const std::array<uint32_t, kNumSemanticClasses> raw_of = learning_map_inverse();
    std::vector<uint32_t> raw(prediction.labels.size());
    std::transform(prediction.labels.begin(), prediction.labels.end(), raw.begin(),
                   [&](uint8_t id) { return raw_of[id]; });
    const std::string out = values["out"].as<std::string>();
    write_text_file_atomically(out,
                               std::string(reinterpret_cast<const char*>(raw.data()), raw.size() * sizeof(uint32_t)));
    std::printf("infer: %lld points -> %s\n", static_cast<long long>(batch.num_points()), out.c_str());
  }
  if (boxes) {
    const std::string text = calib ? label_2_text(detections, *calib, camera) : boxes_text(detections);
    if (values.count("out")) {
      write_text_file_atomically(values["out"].as<std::string>(), text);
      std::printf("infer: %lld points, %zu boxes -> %s\n", static_cast<long long>(batch.num_points()),
                  detections.size(), values["out"].as<std::string>().c_str());
    } else if (values["bench"].as<int>() == 0) {
      std::fputs(text.c_str(), stdout);
    }
  }
  const int runs = values["bench"].as<int>();
  if (runs > 0) {
    std::vector<double> latencies_ms;
    for (int i = 0; i < runs; ++i) {
      const auto t0 = std::chrono::steady_clock::now();
      run();
      latencies_ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    std::vector<double> sorted = latencies_ms;
    std::sort(sorted.begin(), sorted.end());
    const auto rank = [&](double q) { return sorted[std::min(sorted.size() - 1, size_t(q * double(sorted.size())))]; };
    std::printf("infer --bench %d: %s on %s, %lld points, latency p50 %.2f ms, p99 %.2f ms\n", runs,
                model->name().c_str(), describe_device(model->backend()).c_str(),
                static_cast<long long>(batch.num_points()), rank(0.5), rank(0.99));
    if (values.count("json")) {
      JsonWriter json;
      json.begin_object()
          .key("model")
          .value(model->name())
          .key("device")
          .value(describe_device(model->backend()))
          .key("runs")
          .value(runs)
          .key("points")
          .value(batch.num_points());
      json.key("latency_ms_p50").value(rank(0.5)).key("latency_ms_p99").value(rank(0.99));
      json.key("latency_ms").begin_array();
      for (double l : latencies_ms) json.value(l);
      json.end_array().end_object();
      write_text_file_atomically(values["json"].as<std::string>(), json.str() + "\n");
    }
  }
  return kExitOk;
}

}  // namespace lt
