#pragma once
// Readers for the raw formats `lidartrain convert` takes (README.md, "Formats"):
//   semantickitti  sequences/NN/velodyne/*.bin (x, y, z, reflectance float32) + sequences/NN/labels/*.label
//                  (uint32: semantic id in the low 16 bits, instance in the high 16), or velodyne/ + labels/
//                  directly under --in; semantic ids go through the learning map.
//   kitti          [training/]velodyne/*.bin + label_2/*.txt + calib/*.txt; label_2 boxes (camera frame,
//                  location = bottom centre) are moved to the LiDAR frame through R0_rect and
//                  Tr_velo_to_cam; Car, Pedestrian, Cyclist are kept as training boxes, every object (DontCare
//                  and the other types too) as the frame's camera annotation. The calibration (calib/, also
//                  without label_2, as in KITTI's testing split) is stored per frame, with P2 and the image
//                  size (image_2/<frame>.png's header, else 1242×375) when the file has P2.
//   nuscenes       [samples/LIDAR_TOP/]*.pcd.bin (x, y, z, intensity 0..255, ring float32); intensity/255.
// Every size and value read from these files is checked; errors name the file (and line or point).
#include <array>
#include <cstdint>
#include <optional>
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
  std::string image;   // kitti image_2 .png (only its size is read)
};

// The frames under `in_dir`, in a fixed order (sequence, then file name). Throws InputError when the
// directory is missing or holds no frames, or when a frame's companion file is missing.
std::vector<RawFrameFiles> list_raw_frames(RawFormat format, const std::string& in_dir);
// Which datasets a converted frame has: labels for semantickitti with labels/, boxes and camera objects for
// kitti with label_2/, calibrations with calib/ and cameras where the first frame's calibration has P2.
DatasetKind raw_dataset_kind(RawFormat format, const std::vector<RawFrameFiles>& frames);
// A frame with what its files hold; with `kind` (the dataset's), a calibration whose P2 the dataset's
// cameras disagree with is refused naming the file.
Frame load_raw_frame(RawFormat format, const RawFrameFiles& files, const LearningMap& learning_map,
                     const DatasetKind* kind = nullptr);

// (P, 4) x, y, z, intensity from a little-endian float32 file with `floats_per_point` values per point,
// intensity multiplied by `intensity_scale`.
std::vector<float> read_point_file(const std::string& path, int floats_per_point, float intensity_scale);
std::vector<uint32_t> read_label_file(const std::string& path);

struct KittiCalib {
  std::array<double, 9> r0_rect;          // row-major 3x3
  std::array<double, 12> tr_velo_to_cam;  // row-major 3x4
};
// Reads R0_rect and Tr_velo_to_cam (InputError naming the file when either is missing); P2 into `p2`
// when it is given (empty when the file has none).
KittiCalib read_kitti_calib(const std::string& path, std::vector<double>* p2 = nullptr);
// As stored in a dataset's /calib row (io/dataset.hpp): r0_rect then tr_velo_to_cam.
std::vector<double> calib_values(const KittiCalib& calib);
KittiCalib calib_from_values(const std::vector<double>& values);  // InputError unless 21 values

// The left colour camera (image_2): its projection P2 (rectified frame → pixels) and its image size.
struct KittiCamera {
  std::array<double, 12> p2;  // row-major 3x4
  int width = 0, height = 0;  // pixels
};
// KITTI's usual image size (1242×375; the raw recordings vary by a few pixels): convert's size for a frame
// without image_2/.
constexpr int kKittiImageWidth = 1242, kKittiImageHeight = 375;
// Width and height from a PNG file's IHDR chunk (InputError naming the file unless it is a PNG).
std::array<int, 2> read_png_size(const std::string& path);
// As stored in a dataset's /camera row: P2 then width, height.
std::vector<double> camera_values(const KittiCamera& camera);
KittiCamera camera_from_values(const std::vector<double>& values);  // InputError unless 14 values

// Every object of a label_2 file (15 fields, or 16 with a score), as written; InputError naming the file
// and line for a wrong field count, a field that is not a number or a type that is not KITTI's.
std::vector<KittiObject> read_kitti_objects(const std::string& path);

// x, y, z (centre), dx (length), dy (width), dz (height), heading in the LiDAR frame.
std::array<float, 7> kitti_box_to_lidar(const KittiObject& object, const KittiCalib& calib);
// The inverse: a LiDAR-frame box as a label_2 object in the rectified camera frame (its 3D fields only).
KittiObject lidar_box_to_kitti(const std::array<float, 7>& box, const KittiCalib& calib, const std::string& type);

// The observation angle KITTI's devkit defines: rotation_y − atan2(x, z) of the location, in (−π, π].
double observation_angle(const KittiObject& object);

// Where a 3D object lands in the image: the bounding rectangle of its eight corners projected through
// P2 (the parts of its edges in front of the camera: depth ≥ 0.1 m), clipped to [0, width − 1] ×
// [0, height − 1] as OpenPCDet clips its results; truncation = the share of the unclipped rectangle's area
// outside the image.
struct ImageBox {
  std::array<double, 4> bbox;  // left, top, right, bottom
  double truncated;
};
// Empty when no part of the object is in the camera's field of view (behind it, or beside the image).
std::optional<ImageBox> project_to_image(const KittiObject& object, const KittiCamera& camera);

// A detection as a label_2 result: the camera-frame box, its projected 2D box and alpha; empty when the
// box is outside the camera's field of view (KITTI annotates only what the camera sees).
std::optional<KittiObject> kitti_result(const std::array<float, 7>& box, const KittiCalib& calib,
                                        const KittiCamera& camera, const std::string& type, double score);
// A frame's file name (without .txt/.bin) in a KITTI directory: its id where that is a KITTI name (digits
// only), else its dataset index as six digits (synthetic and converted-from-elsewhere frames).
std::string kitti_frame_name(const std::string& id, int64_t index);

// One label_2 line: the 15 fields of an annotation, then with `score` the 16th (the results format of
// KITTI's devkit).
std::string kitti_label_line(const KittiObject& object);
std::string kitti_label_line(const KittiObject& object, double score);

}  // namespace lt
