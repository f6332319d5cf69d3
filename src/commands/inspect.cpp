// lidartrain inspect: a human summary of a dataset (and, with --json, the same as JSON).
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>

#include "io/atomic_file.hpp"
#include "io/checkpoint.hpp"
#include "io/dataset.hpp"
#include "io/label_map.hpp"
#include "src/cli/options.hpp"
#include "src/commands/commands.hpp"
#include "src/common/error.hpp"
#include "src/common/json.hpp"
#include "src/common/stats.hpp"
#include "src/train/config.hpp"
#include "src/train/provenance.hpp"

namespace lt {
namespace {

struct DatasetSummary {
  std::vector<int64_t> label_points = std::vector<int64_t>(kNumSemanticClasses, 0);
  std::vector<int64_t> label_frames = std::vector<int64_t>(kNumSemanticClasses, 0);
  std::vector<int64_t> box_count = std::vector<int64_t>(kNumBoxClasses, 0);
  std::vector<int64_t> box_frames = std::vector<int64_t>(kNumBoxClasses, 0);
};

// Reads this rank's share of the frames (every frame is read, so every checksum is verified).
DatasetSummary summarize_frames(const DatasetReader& reader, const Comm& comm) {
  DatasetSummary s;
  for (int64_t f = comm.rank(); f < reader.num_frames(); f += comm.size()) {
    const Frame frame = reader.read(f);
    std::vector<int64_t> labels(kNumSemanticClasses, 0), boxes(kNumBoxClasses, 0);
    for (uint8_t label : frame.labels) labels[label] += 1;
    for (uint8_t box_class : frame.box_labels) boxes[box_class] += 1;
    for (int c = 0; c < kNumSemanticClasses; ++c) {
      s.label_points[c] += labels[c];
      s.label_frames[c] += labels[c] > 0 ? 1 : 0;
    }
    for (int c = 0; c < kNumBoxClasses; ++c) {
      s.box_count[c] += boxes[c];
      s.box_frames[c] += boxes[c] > 0 ? 1 : 0;
    }
  }
  s.label_points = comm.sum(s.label_points);
  s.label_frames = comm.sum(s.label_frames);
  s.box_count = comm.sum(s.box_count);
  s.box_frames = comm.sum(s.box_frames);
  return s;
}

void write_distribution(JsonWriter& json, const Distribution& d) {
  json.begin_object()
      .key("min")
      .value(d.min)
      .key("median")
      .value(d.median)
      .key("p90")
      .value(d.p90)
      .key("max")
      .value(d.max)
      .key("mean")
      .value(d.mean)
      .end_object();
}

std::vector<double> as_doubles(const std::vector<int64_t>& values) {
  return {values.begin(), values.end()};
}

// "section.key = value" lines of a resolved INI text (config_to_ini's format).
std::map<std::string, std::string> ini_values(const std::string& ini) {
  std::map<std::string, std::string> values;
  std::istringstream in(ini);
  std::string section;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line[0] == '[') {
      section = line.substr(1, line.size() - 2);
    } else if (const size_t eq = line.find(" = "); eq != std::string::npos) {
      values[section + "." + line.substr(0, eq)] = line.substr(eq + 3);
    }
  }
  return values;
}

int inspect_checkpoint(const std::string& path, const po::variables_map& options) {
  const CheckpointMeta meta = read_checkpoint_meta(path);
  const CheckpointState state = read_checkpoint_state(path);
  std::string verified = "every checksum verifies";
  try {
    verify_checkpoint(path);
  } catch (const InputError& e) {
    verified = std::string("DAMAGED: ") + e.what();
  }
  int64_t parameters = 0;
  const auto tensors = checkpoint_tensor_sizes(path, "model");
  for (const auto& [name, size] : tensors) parameters += size;
  std::printf("checkpoint %s: %s\n", path.c_str(), verified.c_str());
  std::printf("model %s, %lld parameters in %zu tensors\n", meta.model.c_str(), static_cast<long long>(parameters),
              tensors.size());
  std::printf("step %lld, epoch %lld, %lld frames seen (global batch %lld), written by %lld rank(s)\n",
              static_cast<long long>(meta.step), static_cast<long long>(meta.epoch),
              static_cast<long long>(state.samples_seen), static_cast<long long>(state.global_batch),
              static_cast<long long>(meta.world_size));
  std::printf("optimizer %s after %lld steps; seed %llu; git %s; written %s\n", meta.optimizer_type.c_str(),
              static_cast<long long>(meta.optimizer_steps), static_cast<unsigned long long>(meta.seed),
              meta.git_sha.c_str(), meta.created.c_str());
  if (!meta.provenance.empty()) {
    std::printf("code %s; dataset %s (%s)\n", code_identity(meta.git_sha, meta.git_diff).c_str(),
                meta.dataset_id.c_str(), meta.dataset.c_str());
    std::printf("provenance %s\n", meta.provenance.c_str());
  } else {
    std::printf("provenance: not recorded (a checkpoint from before lidartrain recorded it)\n");
  }
  const size_t refits = state.cost_model_history.size() / 3;
  if (refits > 0)
    std::printf("cost model: %.3g s per point + %.3g s per frame (%zu refits)\n",
                state.cost_model_history[3 * refits - 2], state.cost_model_history[3 * refits - 1], refits);
  std::vector<std::string> differences;
  if (options.count("config")) {
    const std::string config_path = options["config"].as<std::string>();
    std::ifstream in(config_path);
    require(bool(in), config_path + ": cannot read the config");
    const std::string text{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    const auto stored = ini_values(meta.config);
    const auto given = ini_values(config_to_ini(parse_config_text(text, config_path)));
    for (const auto& [key, value] : given) {
      const auto it = stored.find(key);
      const std::string before = it == stored.end() ? "(absent)" : it->second;
      if (before != value) differences.push_back(key + ": " + before + " → " + value);
    }
    std::printf("config differences (checkpoint → %s): %s\n", config_path.c_str(), differences.empty() ? "none" : "");
    for (const std::string& line : differences) std::printf("  %s\n", line.c_str());
  }
  if (options.count("json")) {
    JsonWriter json;
    json.begin_object()
        .key("checkpoint")
        .value(path)
        .key("verified")
        .value(verified == "every checksum verifies")
        .key("model")
        .value(meta.model)
        .key("parameters")
        .value(parameters)
        .key("step")
        .value(meta.step)
        .key("epoch")
        .value(meta.epoch)
        .key("samples_seen")
        .value(state.samples_seen)
        .key("global_batch")
        .value(state.global_batch)
        .key("world_size")
        .value(meta.world_size)
        .key("optimizer")
        .value(meta.optimizer_type)
        .key("seed")
        .value(int64_t(meta.seed))
        .key("git_sha")
        .value(meta.git_sha)
        .key("created")
        .value(meta.created)
        .key("git_diff")
        .value(meta.git_diff)
        .key("dataset")
        .value(meta.dataset)
        .key("dataset_id")
        .value(meta.dataset_id)
        .key("provenance");
    if (meta.provenance.empty())
      json.value("");
    else
      json.raw(meta.provenance);
    json.key("config_differences").begin_array();
    for (const std::string& line : differences) json.value(line);
    json.end_array().end_object();
    write_text_file_atomically(options["json"].as<std::string>(), json.str() + "\n");
  }
  return verified == "every checksum verifies" ? kExitOk : kExitInputError;
}

}  // namespace

int inspect_main(int argc, char** argv, const Comm& comm) {
  po::options_description options("Options");
  options.add_options()("path", po::value<std::string>()->required()->value_name("DATASET|CKPT"),
                        "dataset directory, shard file or checkpoint")(
      "json", po::value<std::string>()->value_name("FILE"), "also write the summary as JSON")(
      "config", po::value<std::string>()->value_name("CFG"),
      "with a checkpoint: the keys whose values differ between its config and CFG");
  po::positional_options_description positional;
  positional.add("path", 1);
  const std::string synopsis = "DATASET_DIR|SHARD.h5|CKPT.h5 [--config CFG] [--json FILE]";
  const std::string summary =
      "Frames, points, label histogram by class, boxes per class and the load-balancing cost\n"
      "distribution of a dataset. Reads (and checksums) every frame; under mpirun the frames are\n"
      "split over the ranks. Of a checkpoint: step, epoch, data position, model, parameters, world\n"
      "size, optimizer, whether every checksum verifies, and (--config) how its config differs.";
  const ParsedCommand parsed = parse_command("inspect", options, positional, argc, argv);
  if (parsed.help) {
    if (comm.is_root()) std::cout << usage_text("inspect", synopsis, summary, options);
    return kExitOk;
  }
  const std::string path = parsed.values["path"].as<std::string>();
  if (is_checkpoint_file(path)) {
    if (!comm.is_root()) return kExitOk;
    return inspect_checkpoint(path, parsed.values);
  }
  require(!parsed.values.count("config"), "--config: compares a checkpoint's config; " + path + " is a dataset");
  const DatasetReader reader(path);
  DatasetSummary s;
  run_agreed(comm, [&] { s = summarize_frames(reader, comm); });
  if (!comm.is_root()) return kExitOk;

  const Distribution points = distribution_of(as_doubles(reader.points_per_frame()));
  const Distribution cost = distribution_of(as_doubles(reader.costs()));
  const int64_t total_points = int64_t(points.mean * double(points.count) + 0.5);
  const int64_t frames = reader.num_frames();
  std::printf("dataset %s: %zu shards, %lld frames, source '%s'%s\n", path.c_str(), reader.shard_paths().size(),
              static_cast<long long>(frames), reader.source().c_str(),
              reader.kind().has_calib ? ", KITTI calibrations per frame" : "");
  std::printf("points: %lld (per frame min %.0f, median %.0f, p90 %.0f, max %.0f)\n",
              static_cast<long long>(total_points), points.min, points.median, points.p90, points.max);
  std::printf("cost:   min %.0f, median %.0f, p90 %.0f, max %.0f (p90/median %.2f)\n", cost.min, cost.median, cost.p90,
              cost.max, cost.median > 0 ? cost.p90 / cost.median : 0.0);
  if (reader.kind().has_labels) {
    std::printf("%-14s %12s %7s %8s\n", "label", "points", "%", "frames");
    for (int c = 0; c < kNumSemanticClasses; ++c) {
      std::printf("%-14s %12lld %6.2f%% %8lld\n", kSemanticClassNames[c], static_cast<long long>(s.label_points[c]),
                  total_points ? 100.0 * double(s.label_points[c]) / double(total_points) : 0.0,
                  static_cast<long long>(s.label_frames[c]));
    }
  }
  if (reader.kind().has_boxes) {
    std::printf("%-14s %12s %8s\n", "box class", "boxes", "frames");
    for (int c = 1; c < kNumBoxClasses; ++c) {
      std::printf("%-14s %12lld %8lld\n", kBoxClassNames[c], static_cast<long long>(s.box_count[c]),
                  static_cast<long long>(s.box_frames[c]));
    }
  }

  if (parsed.values.count("json")) {
    JsonWriter json;
    json.begin_object()
        .key("path")
        .value(path)
        .key("shards")
        .value(int64_t(reader.shard_paths().size()))
        .key("frames")
        .value(frames)
        .key("source")
        .value(reader.source())
        .key("has_labels")
        .value(reader.kind().has_labels)
        .key("has_boxes")
        .value(reader.kind().has_boxes)
        .key("has_calib")
        .value(reader.kind().has_calib)
        .key("points_total")
        .value(total_points);
    json.key("points_per_frame");
    write_distribution(json, points);
    json.key("cost");
    write_distribution(json, cost);
    json.key("cost_p90_over_median").value(cost.median > 0 ? cost.p90 / cost.median : 0.0);
    const auto write_counts = [&](const char* name, auto names, const std::vector<int64_t>& counts, int first) {
      json.key(name).begin_object();
      for (size_t c = size_t(first); c < counts.size(); ++c) json.key(names[c]).value(counts[c]);
      json.end_object();
    };
    if (reader.kind().has_labels) {
      write_counts("label_points", kSemanticClassNames, s.label_points, 0);
      write_counts("label_frames", kSemanticClassNames, s.label_frames, 0);
    }
    if (reader.kind().has_boxes) {
      write_counts("boxes", kBoxClassNames, s.box_count, 1);
      write_counts("box_frames", kBoxClassNames, s.box_frames, 1);
    }
    json.end_object();
    write_text_file_atomically(parsed.values["json"].as<std::string>(), json.str() + "\n");
  }
  return kExitOk;
}

}  // namespace lt
