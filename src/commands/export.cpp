// lidartrain export: a dataset with calibrations as a KITTI object directory, for other tools (KITTI's
// devkit, OpenPCDet's and mmdetection3d's KITTI loaders):
//
//   OUT/training/velodyne/<name>.bin   x, y, z, reflectance float32 (the dataset's intensity)
//   OUT/training/calib/<name>.txt      P0..P3, R0_rect, Tr_velo_to_cam, Tr_imu_to_velo (the dataset keeps P2
//                                      only: P0, P1, P3 are written as P2; Tr_imu_to_velo is the identity)
//   OUT/training/label_2/<name>.txt    the camera annotation (every object, DontCare included), or where the
//                                      dataset has none, its boxes in the camera's field of view
//   OUT/ImageSets/val.txt              every frame; OUT/frame_ids.txt: <name> <dataset frame id>
//
// <name> is the frame id of a KITTI frame, else the frame index (io/raw_formats.hpp: kitti_frame_name).
// The directory is written as OUT.partial and renamed when every rank is done: OUT exists whole or not.
#include <cstdio>
#include <filesystem>
#include <iostream>

#include "io/atomic_file.hpp"
#include "io/dataset.hpp"
#include "io/raw_formats.hpp"
#include "src/cli/options.hpp"
#include "src/commands/commands.hpp"
#include "src/common/error.hpp"

namespace lt {
namespace fs = std::filesystem;

namespace {

std::string matrix_line(const char* key, const double* values, int count) {
  std::string line = key;
  line += ":";
  char number[32];
  for (int k = 0; k < count; ++k) {
    std::snprintf(number, sizeof number, " %.12e", values[k]);
    line += number;
  }
  return line + "\n";
}

std::string calib_text(const Frame& frame) {
  const double* p2 = frame.camera.data();
  static const double kIdentity[12] = {1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0};
  return matrix_line("P0", p2, 12) + matrix_line("P1", p2, 12) + matrix_line("P2", p2, 12) + matrix_line("P3", p2, 12) +
         matrix_line("R0_rect", frame.calib.data(), 9) + matrix_line("Tr_velo_to_cam", frame.calib.data() + 9, 12) +
         matrix_line("Tr_imu_to_velo", kIdentity, 12);
}

std::string label_text(const Frame& frame, const DatasetKind& kind) {
  std::string out;
  if (kind.has_objects) {
    for (const KittiObject& o : frame.objects) out += kitti_label_line(o) + "\n";
    return out;
  }
  const KittiCalib calib = calib_from_values(frame.calib);
  const KittiCamera camera = camera_from_values(frame.camera);
  for (int64_t b = 0; b < frame.num_boxes(); ++b) {
    std::array<float, 7> box;
    std::copy_n(&frame.boxes[size_t(7 * b)], 7, box.begin());
    const std::optional<KittiObject> o =
        kitti_result(box, calib, camera, kBoxClassNames[frame.box_labels[size_t(b)]], 1.0);
    if (o) out += kitti_label_line(*o) + "\n";
  }
  return out;
}

}  // namespace

int export_main(int argc, char** argv, const Comm& comm) {
  po::options_description options("Options");
  options.add_options()("format", po::value<std::string>()->required()->value_name("FORMAT"), "kitti")(
      "data", po::value<std::string>()->required()->value_name("DIR"), "dataset with calibrations and cameras")(
      "out", po::value<std::string>()->required()->value_name("DIR"), "KITTI directory to create")(
      "force", po::bool_switch(), "replace DIR if it exists");
  const std::string synopsis = "--format kitti --data DIR --out DIR [--force]";
  const ParsedCommand parsed = parse_command("export", options, {}, argc, argv);
  if (parsed.help) {
    if (comm.is_root())
      std::cout << usage_text("export", synopsis,
                              "Writes a dataset with KITTI calibrations (convert --format kitti, synth) as a KITTI\n"
                              "object directory: training/{velodyne,calib,label_2}, ImageSets/val.txt.",
                              options);
    return kExitOk;
  }
  const auto& values = parsed.values;
  const std::string format = values["format"].as<std::string>();
  require(format == "kitti", "--format: '" + format + "' is not kitti (the one export format)");
  const std::string data = values["data"].as<std::string>(), out = values["out"].as<std::string>();
  const bool force = values["force"].as<bool>();
  const DatasetReader reader(data);
  const DatasetKind& kind = reader.kind();
  require(kind.has_calib && kind.has_camera,
          data + ": no " + (kind.has_calib ? "P2 in its calibrations" : "calibrations") +
              " (convert --format kitti from calib/ with P2, or synth, make datasets with them), which a KITTI "
              "directory needs");
  require(force || !fs::exists(out), out + ": exists (--force replaces it)");
  const bool labels = kind.has_objects || kind.has_boxes;
  const fs::path partial = out + ".partial";
  // Whatever step fails on whichever rank, nothing of the export is left behind.
  const auto remove_partial = [&] {
    if (comm.is_root()) fs::remove_all(partial);
  };
  run_agreed(
      comm,
      [&] {
        if (!comm.is_root()) return;
        fs::remove_all(partial);
        for (const char* dir : {"training/velodyne", "training/calib", "training/label_2", "ImageSets"}) {
          if (std::string(dir) == "training/label_2" && !labels) continue;
          create_directories((partial / dir).string(), "export directory");
        }
      },
      remove_partial);
  run_agreed(
      comm,
      [&] {
        for (int64_t f = comm.rank(); f < reader.num_frames(); f += comm.size()) {
          const Frame frame = reader.read(f);
          const std::string name = kitti_frame_name(frame.id, f);
          write_file_atomically((partial / "training/velodyne" / (name + ".bin")).string(), frame.points.data(),
                                sizeof(float) * frame.points.size());
          write_text_file_atomically((partial / "training/calib" / (name + ".txt")).string(), calib_text(frame));
          if (labels)
            write_text_file_atomically((partial / "training/label_2" / (name + ".txt")).string(),
                                       label_text(frame, kind));
        }
      },
      remove_partial);
  run_agreed(
      comm,
      [&] {
        if (!comm.is_root()) return;
        std::string names, ids;
        for (int64_t f = 0; f < reader.num_frames(); ++f) {
          const std::string name = kitti_frame_name(reader.frame_id(f), f);
          names += name + "\n";
          ids += name + " " + reader.frame_id(f) + "\n";
        }
        write_text_file_atomically((partial / "ImageSets/val.txt").string(), names);
        write_text_file_atomically((partial / "frame_ids.txt").string(), ids);
        if (fs::exists(out)) fs::remove_all(out);
        fs::rename(partial, out);
        std::printf("export: %lld frames -> %s (KITTI: training/velodyne, calib%s, ImageSets/val.txt)\n",
                    static_cast<long long>(reader.num_frames()), out.c_str(), labels ? ", label_2" : "");
      },
      remove_partial);
  return kExitOk;
}

}  // namespace lt
