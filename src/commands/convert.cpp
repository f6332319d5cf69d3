// lidartrain convert: SemanticKITTI, KITTI and nuScenes frames into a sharded dataset.
#include <cstdio>
#include <iostream>

#include "io/raw_formats.hpp"
#include "io/sharded_writer.hpp"
#include "src/cli/options.hpp"
#include "src/commands/commands.hpp"
#include "src/common/error.hpp"

namespace lt {

int convert_main(int argc, char** argv, const Comm& comm) {
  po::options_description options("Options");
  options.add_options()("format", po::value<std::string>()->required()->value_name("F"),
                        "semantickitti | kitti | nuscenes")(
      "in", po::value<std::string>()->required()->value_name("RAW"), "raw dataset directory")(
      "out", po::value<std::string>()->required()->value_name("DIR"), "dataset directory to create")(
      "shards", po::value<int>()->default_value(0)->value_name("K"), "number of shards (0: one per 32 frames)")(
      "label-map", po::value<std::string>()->value_name("FILE"),
      "semantickitti: a YAML file with a learning_map block (default: the standard SemanticKITTI map)")(
      "force", po::bool_switch(), "replace DIR if it exists");
  const std::string synopsis = "--format semantickitti|kitti|nuscenes --in RAW --out DIR [--shards K]";
  const std::string summary =
      "Converts raw frames (layouts in README.md, 'Formats') into a lidartrain.dataset directory.\n"
      "Under mpirun the shards are split over the ranks.";
  const ParsedCommand parsed = parse_command("convert", options, {}, argc, argv);
  if (parsed.help) {
    if (comm.is_root()) std::cout << usage_text("convert", synopsis, summary, options);
    return kExitOk;
  }
  const auto& values = parsed.values;
  require_non_negative(values, "shards");
  const RawFormat format = parse_raw_format(values["format"].as<std::string>());
  const std::string in_dir = values["in"].as<std::string>();
  const LearningMap learning_map = values.count("label-map")
                                       ? LearningMap::from_yaml_file(values["label-map"].as<std::string>())
                                       : LearningMap::semantic_kitti();
  // Every rank lists the same frames in the same order; each then loads only its shards' frames.
  const std::vector<RawFrameFiles> frames = list_raw_frames(format, in_dir);

  ShardedWriteOptions write;
  write.out_dir = values["out"].as<std::string>();
  write.num_frames = int64_t(frames.size());
  write.num_shards = values["shards"].as<int>();
  write.overwrite = values["force"].as<bool>();
  write.kind = raw_dataset_kind(format, frames);
  write.source = values["format"].as<std::string>() + " " + in_dir;

  const ShardedWriteSummary done = write_sharded_dataset(
      comm, write, [&](int64_t f) { return load_raw_frame(format, frames[size_t(f)], learning_map, &write.kind); });
  if (comm.is_root()) {
    std::printf("convert: %lld frames, %lld points, %lld boxes in %d shards -> %s (%.2f s)\n",
                static_cast<long long>(done.frames), static_cast<long long>(done.points),
                static_cast<long long>(done.boxes), done.shards, write.out_dir.c_str(), done.seconds);
  }
  return kExitOk;
}

}  // namespace lt
