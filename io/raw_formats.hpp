#pragma once
// Readers for the raw formats `lidartrain convert` takes (README.md, "Formats"):
//   semantickitti  sequences/NN/velodyne/*.bin (x, y, z, reflectance float32) + sequences/NN/labels/*.label
//                  (uint32: semantic id in the low 16 bits, instance in the high 16), or velodyne/ + labels/
//                  directly under --in; semantic ids go through the learning map.
//   kitti          [training/]velodyne/*.bin + label_2/*.txt + calib/*.txt; label_2 boxes (camera frame,
//                  location = bottom centre) are moved to the LiDAR frame through R0_rect and
//                  Tr_velo_to_cam; Car, Pedestrian, Cyclist are kept, other types are not trained on. The
//                  calibration (calib/, also without label_2, as in KITTI's testing split) is stored per frame.
//   nuscenes       [samples/LIDAR_TOP/]*.pcd.bin (x, y, z, intensity 0..255, ring float32); intensity/255.
// Every size and value read from these files is checked; errors name the file (and line or point).
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "io/dataset.hpp"
#include "io/label_map.hpp"

namespace lt {

enum class RawFormat { semantickitti, kitti, nuscenes };
RawFormat parse_raw_format(const std::string& name);  // throws InputError for an unknown name

// The files that make one frame; empty paths are not part of this format.
struct RawFrameFiles {
  std::string id;
  std::string points;
  std::string labels;  // semantickitti .label
  std::string boxes;   // kitti label_2 .txt
  std::string calib;   // kitti calib .txt
};

// The frames under `in_dir`, in a fixed order (sequence, then file name). Throws InputError when the
// directory is missing or holds no frames, or when a frame's companion file is missing.
std::vector<RawFrameFiles> list_raw_frames(RawFormat format, const std::string& in_dir);
// Which datasets a converted frame has: labels for semantickitti with labels/, boxes for kitti with label_2/.
DatasetKind raw_dataset_kind(RawFormat format, const std::vector<RawFrameFiles>& frames);
Frame load_raw_frame(RawFormat format, const RawFrameFiles& files, const LearningMap& learning_map);

// (P, 4) x, y, z, intensity from a little-endian float32 file with `floats_per_point` values per point,
// intensity multiplied by `intensity_scale`.
std::vector<float> read_point_file(const std::string& path, int floats_per_point, float intensity_scale);
std::vector<uint32_t> read_label_file(const std::string& path);

struct KittiCalib {
  std::array<double, 9> r0_rect;          // row-major 3x3
  std::array<double, 12> tr_velo_to_cam;  // row-major 3x4
};
KittiCalib read_kitti_calib(const std::string& path);
// As stored in a dataset's /calib row (io/dataset.hpp): r0_rect then tr_velo_to_cam.
std::vector<double> calib_values(const KittiCalib& calib);
KittiCalib calib_from_values(const std::vector<double>& values);  // InputError unless 21 values

struct KittiObject {
  std::string type;
  double height, width, length;  // metres
  double x, y, z;                // bottom centre, rectified camera frame
  double rotation_y;             // about the camera's y axis
};
std::vector<KittiObject> read_kitti_objects(const std::string& path);

// x, y, z (centre), dx (length), dy (width), dz (height), heading in the LiDAR frame.
std::array<float, 7> kitti_box_to_lidar(const KittiObject& object, const KittiCalib& calib);
// The inverse: a LiDAR-frame box as a label_2 object in the rectified camera frame.
KittiObject lidar_box_to_kitti(const std::array<float, 7>& box, const KittiCalib& calib, const std::string& type);
// One label_2 line with a score (the results format of KITTI's devkit): no 2D box or alpha is predicted,
// so alpha is −10 and the 2D box 0 0 0 0.
std::string kitti_label_line(const KittiObject& object, double score);

}  // namespace lt
