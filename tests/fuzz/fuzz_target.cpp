// libFuzzer targets for every parser of outside input (issue 12). Each input is written to a file (the
// parsers take paths, as users hand them files) and parsed; bad input must end as an InputError (the
// one-line error the command prints), never a crash, a sanitizer report, a hang or another exception.
// One executable per target: LT_FUZZ_TARGET_<name> (tests/CMakeLists.txt). scripts/fuzz.sh runs them.
#include <hdf5.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "io/checkpoint.hpp"
#include "io/dataset.hpp"
#include "io/label_map.hpp"
#include "io/predictions.hpp"
#include "io/raw_formats.hpp"
#include "io/tfevents.hpp"
#include "src/commands/infer_dataset.hpp"
#include "src/common/error.hpp"
#include "src/train/config.hpp"

namespace {

// A file of this process's own (fuzzers may run in parallel).
const std::string& input_path() {
  static const std::string path = [] {
    const auto base =
        std::filesystem::temp_directory_path() / ("lidartrain_fuzz_" + std::to_string(::getpid()) + LT_FUZZ_SUFFIX);
#if defined(LT_FUZZ_TARGET_predictions)
    std::filesystem::create_directories(base);  // the reader takes a directory of *.h5
    return (base / "rank-00000-of-00001.h5").string();
#else
    return base.string();
#endif
  }();
  return path;
}

void write_input(const uint8_t* data, size_t size) {
  std::ofstream out(input_path(), std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(data), std::streamsize(size));
}

void parse() {
  const std::string& path = input_path();
#if defined(LT_FUZZ_TARGET_point_file)
  // KITTI/SemanticKITTI .bin (4 floats a point) and nuScenes .pcd.bin (5), then the frame checks.
  for (int floats : {4, 5}) {
    try {
      lt::Frame frame;
      frame.id = path;
      frame.points = lt::read_point_file(path, floats, floats == 5 ? 1.f / 255.f : 1.f);
      lt::validate_frame(frame, lt::DatasetKind{}, path);
    } catch (const lt::InputError&) {
    }
  }
#elif defined(LT_FUZZ_TARGET_label_file)
  (void)lt::read_label_file(path);
#elif defined(LT_FUZZ_TARGET_kitti_label)
  const lt::KittiCalib calib{{1, 0, 0, 0, 1, 0, 0, 0, 1}, {0, -1, 0, 0, 0, 0, -1, 0, 1, 0, 0, 0}};
  for (const lt::KittiObject& object : lt::read_kitti_objects(path)) (void)lt::kitti_box_to_lidar(object, calib);
#elif defined(LT_FUZZ_TARGET_kitti_calib)
  (void)lt::read_kitti_calib(path);
#elif defined(LT_FUZZ_TARGET_label_map)
  const lt::LearningMap map = lt::LearningMap::from_yaml_file(path);
  for (uint32_t raw : map.raw_ids()) (void)map.to_train(raw);
#elif defined(LT_FUZZ_TARGET_ini_config)
  std::ifstream in(path, std::ios::binary);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  (void)lt::train_config_from(lt::parse_config_text(text, path));
#elif defined(LT_FUZZ_TARGET_dataset_shard)
  const lt::DatasetReader reader(path);
  for (int64_t f = 0; f < reader.num_frames(); ++f) (void)reader.read(f);
#elif defined(LT_FUZZ_TARGET_checkpoint)
  (void)lt::read_checkpoint_meta(path);
  (void)lt::read_checkpoint_state(path);
  lt::verify_checkpoint(path);
  for (const char* group : {"model", "buffers"}) (void)lt::checkpoint_tensor_sizes(path, group);
#elif defined(LT_FUZZ_TARGET_predictions)
  const lt::PredictionsReader reader(std::filesystem::path(path).parent_path().string());
  for (int64_t f = 0; f < 64; ++f)
    if (reader.has(f)) (void)reader.read(f);
#elif defined(LT_FUZZ_TARGET_tfevents)
  // A TensorBoard event file a resumed run reads back (one a crash may have cut off).
  size_t good_end = 0;
  (void)lt::read_tfevents(path, /*strict=*/false, &good_end);
  (void)lt::read_tfevents(path, /*strict=*/true);
#elif defined(LT_FUZZ_TARGET_boxes_text)
  // infer --data's LiDAR-frame box files, read back by a rerun.
  std::ifstream in(path, std::ios::binary);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  (void)lt::parse_boxes_text(text, path);
#else
#error "define one LT_FUZZ_TARGET_<name>"
#endif
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  write_input(data, size);
  try {
    parse();
  } catch (const lt::InputError&) {
    // The expected end of bad input: one line naming the file.
  }
#if defined(LT_FUZZ_TARGET_dataset_shard) || defined(LT_FUZZ_TARGET_checkpoint) || defined(LT_FUZZ_TARGET_predictions)
  // Every HDF5 object the reader opened is closed again, on every path (scripts/fuzz.sh suppresses the
  // leaks inside libhdf5's own failing calls, so this is the check of ours).
  const ssize_t open_objects = H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL);
  if (open_objects != 0) {
    std::fprintf(stderr, "fuzz: %zd HDF5 objects left open after an input\n", open_objects);
    std::abort();
  }
#endif
  return 0;
}
