#pragma once
// The sharded dataset, schema `lidartrain.dataset` v4 (DESIGN.md §4). A dataset is a directory of
// HDF5 shards; each shard holds whole frames, concatenated:
//
//   /points         float32 (P, 4)   x, y, z, intensity of every frame, frame after frame
//   /point_offsets  int64   (F+1)    frame f owns points[point_offsets[f] : point_offsets[f+1]]
//   /labels         uint8   (P)      training id per point            (only if the source has labels)
//   /boxes          float32 (B, 7)   x, y, z, dx, dy, dz, heading      (only if the source has boxes)
//   /box_labels     uint8   (B)      1 Car, 2 Pedestrian, 3 Cyclist
//   /box_offsets    int64   (F+1)
//   /frame_ids      string  (F)      where the frame came from
//   /cost           int64   (F)      points in CostRange at write time (load balancing)
//   /calib          float64 (F, 21)  KITTI R0_rect (3×3) then Tr_velo_to_cam (3×4), row-major, per frame
//                                    (only if the source has calibrations: convert --format kitti with calib/)
//   /camera         float64 (F, 14)  KITTI P2 (3×4, row-major) then the image's width and height in pixels
//                                    (only where the calibrations have P2)
//   /objects        float64 (K, 14)  the camera's annotation (KITTI label_2 objects, every type, DontCare
//   /object_types   uint8   (K)      included): truncated, occluded, alpha, 2D box (4), h, w, l, x, y, z,
//   /object_offsets int64   (F+1)    rotation_y; type: index into kKittiTypes (only with label_2 / synth)
//
// /boxes are what the models train on (Car, Pedestrian, Cyclist in the LiDAR frame, every direction);
// /objects are what KITTI's protocol scores against (eval, src/train/kitti_eval.hpp).
// Version 4 added /camera and /objects, version 3 /calib; version 2 files (no calibrations) and version 1
// files (variable-length strings) are read as before.
//
// Every dataset is chunked (a frame is a few chunks) and Fletcher32-checksummed, so a flipped bit is
// a read error rather than a wrong value. Writers and readers validate the same invariants
// (validate_frame) and name the file and frame in every error.
#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace lt {

constexpr size_t kCalibValues = 21;   // 9 (R0_rect) + 12 (Tr_velo_to_cam)
constexpr size_t kCameraValues = 14;  // 12 (P2) + image width, height

// The object types of KITTI's label_2 files (its devkit's readme), in /object_types' numbering.
constexpr std::array<const char*, 9> kKittiTypes = {"Car",     "Van",  "Truck", "Pedestrian", "Person_sitting",
                                                    "Cyclist", "Tram", "Misc",  "DontCare"};
int kitti_type_index(const std::string& type);  // -1 when it is not one of them

// One object of a camera's annotation as a KITTI label_2 line has it: rectified camera frame (x right,
// y down, z forward), location at the bottom centre. DontCare regions have only a 2D box (the rest -1,
// -1000, -10 as in KITTI's files).
struct KittiObject {
  std::string type;
  double truncated = 0;                      // 0..1: how much of the object leaves the image
  int occluded = 0;                          // 0 fully visible, 1 partly, 2 largely occluded, 3 unknown
  double alpha = -10;                        // observation angle (rotation_y − atan2(x, z)), −π..π
  std::array<double, 4> bbox{};              // 2D box in the image: left, top, right, bottom (pixels)
  double height = 0, width = 0, length = 0;  // metres
  double x = 0, y = 0, z = 0;                // bottom centre
  double rotation_y = 0;                     // about the camera's y axis
  double score = 1;                          // results only (the 16th field)
  bool operator==(const KittiObject&) const = default;
};

struct Frame {
  std::string id;                    // e.g. "sequences/00/000123" or "synth/seed1/000042"
  std::vector<float> points;         // (P, 4) x, y, z, intensity
  std::vector<uint8_t> labels;       // (P) training ids; empty when the source has none
  std::vector<float> boxes;          // (B, 7) x, y, z (box centre), dx, dy, dz, heading
  std::vector<uint8_t> box_labels;   // (B) BoxClass
  std::vector<double> calib;         // (21) KittiCalib's r0_rect then tr_velo_to_cam; empty when none
  std::vector<double> camera;        // (14) P2 then image width, height; empty when none
  std::vector<KittiObject> objects;  // the camera's annotation (label_2); empty when none

  int64_t num_points() const { return int64_t(points.size() / 4); }
  int64_t num_boxes() const { return int64_t(box_labels.size()); }
};

// What every frame of a dataset has; all shards of a dataset agree on it.
struct DatasetKind {
  bool has_labels = false;
  bool has_boxes = false;
  bool has_calib = false;
  bool has_camera = false;   // needs has_calib
  bool has_objects = false;  // needs has_calib
  bool operator==(const DatasetKind&) const = default;
};

// Throws InputError("<where>: frame <id>: ...") unless: sizes agree, coordinates are finite,
// intensity is in [0, 1], labels are training ids, boxes are finite with positive sizes and a box class,
// a calibration is 21 finite values, a camera 14 with a positive whole image size, objects have a KITTI
// type, finite values and an occlusion level of −1..3.
void validate_frame(const Frame& frame, const DatasetKind& kind, const std::string& where);

// The work estimate stored in /cost.
int64_t frame_cost(const Frame& frame);

// Writes one shard to `path` (through `path.tmp` and a rename, so a shard either exists whole or not
// at all). `source` says where the data came from ("synth seed=1 skew=1", "kitti"). Validates every
// frame first; throws InputError naming the frame.
void write_shard(const std::string& path, const std::vector<Frame>& frames, const DatasetKind& kind,
                 const std::string& source);

// Reads a dataset: a directory of shards (`*.h5`, in name order) or a single shard file. Opening
// checks the schema and the offsets of every shard; read() checks the frame it returns.
class DatasetReader {
 public:
  explicit DatasetReader(const std::string& path);
  ~DatasetReader();
  DatasetReader(DatasetReader&&) noexcept;
  DatasetReader& operator=(DatasetReader&&) noexcept;

  int64_t num_frames() const;
  const DatasetKind& kind() const;
  const std::string& source() const;
  const std::vector<std::string>& shard_paths() const;
  // Per-frame cost and point count, global frame order (read at open: no frame data is touched).
  const std::vector<int64_t>& costs() const;
  const std::vector<int64_t>& points_per_frame() const;
  const std::vector<int64_t>& boxes_per_frame() const;
  Frame read(int64_t frame_index) const;
  // Frame f's id (read at open: no frame data is touched).
  const std::string& frame_id(int64_t frame_index) const;
  // Per shard, a hash of what ranks must agree on to train together: the shard's file name, its frame
  // ids, point and box counts and costs (read at open). Ranks compare them before the first step.
  const std::vector<uint64_t>& shard_fingerprints() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace lt
