// lidartrain infer: one frame through a semseg checkpoint, written as a SemanticKITTI .label file.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "io/raw_formats.hpp"
#include "src/cli/options.hpp"
#include "src/commands/commands.hpp"
#include "src/common/error.hpp"
#include "src/common/stats.hpp"
#include "src/train/data.hpp"
#include "src/train/evaluate.hpp"
#include "src/train/trainer.hpp"

namespace lt {

int infer_main(int argc, char** argv, const Comm& comm) {
  po::options_description options("Options");
  options.add_options()("checkpoint", po::value<std::string>()->required()->value_name("CKPT"), "checkpoint file")(
      "input", po::value<std::string>()->required()->value_name("FRAME.bin"),
      "KITTI/SemanticKITTI .bin (x, y, z, reflectance float32)")(
      "out", po::value<std::string>()->value_name("FILE.label"),
      "SemanticKITTI .label output: uint32 raw ids through the inverse learning_map")(
      "bench", po::value<int>()->default_value(0)->value_name("N"), "time N runs and print latency p50/p99")(
      "json", po::value<std::string>()->value_name("FILE"), "with --bench: write the latencies as JSON");
  const ParsedCommand parsed = parse_command("infer", options, {}, argc, argv);
  if (parsed.help) {
    if (comm.is_root())
      std::cout << usage_text("infer", "--checkpoint CKPT --input FRAME.bin [--out FILE.label] [--bench N]",
                              "Segments one frame.", options);
    return kExitOk;
  }
  const auto& values = parsed.values;
  require_non_negative(values, "bench");
  const std::string input = values["input"].as<std::string>();
  Semseg model = load_semseg(values["checkpoint"].as<std::string>());
  Frame frame;
  frame.id = input;
  frame.points = read_point_file(input, 4, 1.f);
  validate_frame(frame, DatasetKind{}, input);
  const PointBatch batch = make_batch({frame});
  const std::vector<uint8_t> predicted = predict_labels(model.forward(batch, false), batch.num_points());
  if (!comm.is_root()) return kExitOk;

  if (values.count("out")) {
    const std::array<uint32_t, kNumSemanticClasses> raw_of = learning_map_inverse();
    std::vector<uint32_t> raw(predicted.size());
    std::transform(predicted.begin(), predicted.end(), raw.begin(), [&](uint8_t id) { return raw_of[id]; });
    const std::string out = values["out"].as<std::string>(), tmp = out + ".tmp";
    {
      std::ofstream file(tmp, std::ios::binary | std::ios::trunc);
      file.write(reinterpret_cast<const char*>(raw.data()), std::streamsize(raw.size() * sizeof(uint32_t)));
      require(bool(file), tmp + ": write failed");
    }
    std::filesystem::rename(tmp, out);
    std::printf("infer: %lld points -> %s\n", static_cast<long long>(batch.num_points()), out.c_str());
  }
  const int runs = values["bench"].as<int>();
  if (runs > 0) {
    std::vector<double> latencies_ms;
    for (int i = 0; i < runs; ++i) {
      const auto t0 = std::chrono::steady_clock::now();
      predict_labels(model.forward(batch, false), batch.num_points());
      latencies_ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    std::vector<double> sorted = latencies_ms;
    std::sort(sorted.begin(), sorted.end());
    const auto rank = [&](double q) { return sorted[std::min(sorted.size() - 1, size_t(q * double(sorted.size())))]; };
    std::printf("infer --bench %d: %lld points, latency p50 %.2f ms, p99 %.2f ms\n", runs,
                static_cast<long long>(batch.num_points()), rank(0.5), rank(0.99));
    if (values.count("json")) {
      JsonWriter json;
      json.begin_object().key("runs").value(runs).key("points").value(batch.num_points());
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
