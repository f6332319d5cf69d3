// lidartrain synth: procedural LiDAR scenes written as a sharded dataset (DESIGN.md §4).
#include <cstdio>
#include <iostream>

#include "io/sharded_writer.hpp"
#include "src/cli/options.hpp"
#include "src/commands/commands.hpp"
#include "src/common/error.hpp"
#include "src/synth/scene.hpp"

namespace lt {

int synth_main(int argc, char** argv, const Comm& comm) {
  po::options_description options("Options");
  options.add_options()("out", po::value<std::string>()->required()->value_name("DIR"), "dataset directory to create")(
      "frames", po::value<int64_t>()->required()->value_name("N"), "number of frames")(
      "shards", po::value<int>()->default_value(0)->value_name("K"), "number of shards (0: one per 32 frames)")(
      "seed", po::value<uint64_t>()->default_value(1)->value_name("S"), "scene seed; frame f depends only on (S, f)")(
      "skew", po::value<double>()->default_value(1.0)->value_name("X"),
      "spread of scene density over frames: 0 every scene alike, 1 long-tailed like real drives, >1 more")(
      "no-camera", po::bool_switch(),
      "LiDAR only: leave out the KITTI camera (calibration, P2, the label_2 annotation of the boxes it sees)")(
      "force", po::bool_switch(), "replace DIR if it exists");
  const std::string synopsis = "--out DIR --frames N [--shards K] [--seed S] [--skew X] [--no-camera]";
  const std::string summary =
      "Ray-casts a 64-beam spinning LiDAR into procedural street scenes and writes labelled points\n"
      "(SemanticKITTI training ids) and Car/Pedestrian/Cyclist boxes; the KITTI rig's camera with the\n"
      "label_2 annotation of the boxes in its view (2D box, truncation, occlusion from the ray cast,\n"
      "alpha), so eval scores it by KITTI's protocol. Under mpirun each rank writes\n"
      "its own shards; the data is byte-identical for any rank count.";
  const ParsedCommand parsed = parse_command("synth", options, {}, argc, argv);
  if (parsed.help) {
    if (comm.is_root()) std::cout << usage_text("synth", synopsis, summary, options);
    return kExitOk;
  }
  const auto& values = parsed.values;
  require_positive(values, "frames");
  require_non_negative(values, "shards");
  require_non_negative(values, "skew");
  const uint64_t seed = values["seed"].as<uint64_t>();
  const double skew = values["skew"].as<double>();

  ShardedWriteOptions write;
  write.out_dir = values["out"].as<std::string>();
  write.num_frames = values["frames"].as<int64_t>();
  write.num_shards = values["shards"].as<int>();
  write.overwrite = values["force"].as<bool>();
  const bool camera = !values["no-camera"].as<bool>();
  write.kind = DatasetKind{true, true, camera, camera, camera};
  char source[96];
  std::snprintf(source, sizeof source, "synth seed=%llu skew=%g", static_cast<unsigned long long>(seed), skew);
  write.source = source;

  const synth::SensorModel sensor;
  const ShardedWriteSummary summary_out =
      write_sharded_dataset(comm, write, [&](int64_t f) { return synth::synth_frame(seed, f, skew, sensor, camera); });
  if (comm.is_root()) {
    std::printf("synth: %lld frames, %lld points, %lld boxes in %d shards -> %s (%.2f s, %.1f frames/s on %d ranks)\n",
                static_cast<long long>(summary_out.frames), static_cast<long long>(summary_out.points),
                static_cast<long long>(summary_out.boxes), summary_out.shards, write.out_dir.c_str(),
                summary_out.seconds, double(summary_out.frames) / summary_out.seconds, comm.size());
  }
  return kExitOk;
}

}  // namespace lt
