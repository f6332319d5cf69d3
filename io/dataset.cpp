#include "io/dataset.hpp"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <functional>

#include "io/hdf5_util.hpp"
#include "io/label_map.hpp"
#include "kernels/cpu/points.hpp"
#include "src/common/error.hpp"
#include "src/common/rng.hpp"

namespace lt {
namespace fs = std::filesystem;

namespace {
constexpr const char* kSchema = "lidartrain.dataset";
// Version 4 adds /camera and /objects, version 3 /calib; version 2 stores its strings fixed-length
// (io/hdf5_util.hpp: Strings); version 1 files, whose strings are variable-length, are read as before.
constexpr int64_t kVersion = 4;
constexpr size_t kObjectValues = 14;  // a /objects row (io/dataset.hpp)
// Chunk sizes: a 120k-point frame is about four point chunks and one label chunk.
constexpr hsize_t kPointChunkRows = 32768;
constexpr hsize_t kLabelChunkRows = 131072;
constexpr hsize_t kSmallChunkRows = 4096;
// Far above any sensor (a 128-beam scan is ~260k points; 10 accumulated nuScenes sweeps ~350k).
constexpr hsize_t kMaxPointsPerFrame = hsize_t(1) << 24;
constexpr hsize_t kMaxBoxesPerFrame = hsize_t(1) << 16;

std::string frame_where(const std::string& where, const Frame& frame) {
  return where + ": frame " + (frame.id.empty() ? std::string("<no id>") : frame.id);
}

// A /objects row and back (the type goes to /object_types).
std::array<double, kObjectValues> object_row(const KittiObject& o) {
  return {o.truncated, double(o.occluded), o.alpha, o.bbox[0], o.bbox[1], o.bbox[2],   o.bbox[3], o.height,
          o.width,     o.length,           o.x,     o.y,       o.z,       o.rotation_y};
}
KittiObject object_of_row(const double* r, uint8_t type) {
  KittiObject o;
  o.type = kKittiTypes[type];
  o.truncated = r[0], o.occluded = int(r[1]), o.alpha = r[2];
  o.bbox = {r[3], r[4], r[5], r[6]};
  o.height = r[7], o.width = r[8], o.length = r[9], o.x = r[10], o.y = r[11], o.z = r[12], o.rotation_y = r[13];
  return o;
}
}  // namespace

int kitti_type_index(const std::string& type) {
  for (size_t i = 0; i < kKittiTypes.size(); ++i)
    if (type == kKittiTypes[i]) return int(i);
  return -1;
}

void validate_frame(const Frame& frame, const DatasetKind& kind, const std::string& where) {
  const std::string at = frame_where(where, frame);
  require(frame.points.size() % 4 == 0, at + ": point array is not a multiple of 4 floats");
  const int64_t num_points = frame.num_points();
  for (int64_t i = 0; i < num_points; ++i) {
    const float* p = &frame.points[4 * i];
    // Messages are built only on failure: this loop runs over every point of every frame.
    if (!(std::isfinite(p[0]) && std::isfinite(p[1]) && std::isfinite(p[2]) && std::isfinite(p[3])))
      throw InputError(at + ": point " + std::to_string(i) + " has a non-finite value");
    if (!(p[3] >= 0.f && p[3] <= 1.f))
      throw InputError(at + ": point " + std::to_string(i) + " has intensity " + std::to_string(p[3]) +
                       " outside [0, 1]");
  }
  if (kind.has_labels) {
    require(int64_t(frame.labels.size()) == num_points,
            at + ": " + std::to_string(frame.labels.size()) + " labels for " + std::to_string(num_points) + " points");
    for (int64_t i = 0; i < num_points; ++i) {
      if (frame.labels[i] >= kNumSemanticClasses)
        throw InputError(at + ": point " + std::to_string(i) + " has label " + std::to_string(frame.labels[i]) +
                         ", not a training id (0.." + std::to_string(kNumSemanticClasses - 1) + ")");
    }
  } else {
    require(frame.labels.empty(), at + ": has labels but the dataset has none");
  }
  if (kind.has_boxes) {
    require(frame.boxes.size() == 7 * frame.box_labels.size(),
            at + ": " + std::to_string(frame.boxes.size()) + " box values for " +
                std::to_string(frame.box_labels.size()) + " box labels");
    for (int64_t b = 0; b < frame.num_boxes(); ++b) {
      const float* box = &frame.boxes[7 * b];
      const std::string box_at = at + ": box " + std::to_string(b);
      for (int k = 0; k < 7; ++k) require(std::isfinite(box[k]), box_at + " has a non-finite value");
      require(box[3] > 0.f && box[4] > 0.f && box[5] > 0.f, box_at + " has a non-positive size");
      require(frame.box_labels[b] >= 1 && frame.box_labels[b] < kNumBoxClasses,
              box_at + " has class " + std::to_string(frame.box_labels[b]) + ", expected 1..3");
    }
  } else {
    require(frame.boxes.empty() && frame.box_labels.empty(), at + ": has boxes but the dataset has none");
  }
  if (kind.has_calib) {
    require(frame.calib.size() == kCalibValues, at + ": " + std::to_string(frame.calib.size()) +
                                                    " calibration values, expected " + std::to_string(kCalibValues));
    for (double v : frame.calib) require(std::isfinite(v), at + ": calibration has a non-finite value");
  } else {
    require(frame.calib.empty(), at + ": has a calibration but the dataset has none");
  }
  if (kind.has_camera) {
    require(frame.camera.size() == kCameraValues, at + ": " + std::to_string(frame.camera.size()) +
                                                      " camera values, expected " + std::to_string(kCameraValues));
    for (double v : frame.camera) require(std::isfinite(v), at + ": camera has a non-finite value");
    for (int k : {12, 13})
      require(frame.camera[size_t(k)] >= 1 && frame.camera[size_t(k)] <= 65535 &&
                  frame.camera[size_t(k)] == std::floor(frame.camera[size_t(k)]),
              at + ": image " + (k == 12 ? "width " : "height ") + std::to_string(frame.camera[size_t(k)]) +
                  " is not a whole number of pixels in 1..65535");
  } else {
    require(frame.camera.empty(), at + ": has a camera but the dataset has none");
  }
  if (kind.has_objects) {
    for (size_t k = 0; k < frame.objects.size(); ++k) {
      const KittiObject& o = frame.objects[k];
      const std::string object_at = at + ": object " + std::to_string(k);
      require(kitti_type_index(o.type) >= 0, object_at + ": '" + o.type + "' is not a KITTI object type");
      for (double v : object_row(o)) require(std::isfinite(v), object_at + " has a non-finite value");
      require(o.occluded >= -1 && o.occluded <= 3,
              object_at + ": occlusion level " + std::to_string(o.occluded) + ", expected 0..3 (-1: DontCare)");
    }
  } else {
    require(frame.objects.empty(), at + ": has camera objects but the dataset has none");
  }
  require(kind.has_calib || !(kind.has_camera || kind.has_objects),
          at + ": a camera or camera objects need a calibration");
}

int64_t frame_cost(const Frame& frame) {
  return count_points_in_cost_range(frame.points.data(), frame.num_points());
}

void write_shard(const std::string& path, const std::vector<Frame>& frames, const DatasetKind& kind,
                 const std::string& source) {
  const std::lock_guard<std::recursive_mutex> lock(h5::library_mutex());
  for (const Frame& frame : frames) validate_frame(frame, kind, path);

  std::vector<int64_t> point_offsets{0}, box_offsets{0}, object_offsets{0}, costs;
  std::vector<std::string> ids;
  for (const Frame& frame : frames) {
    point_offsets.push_back(point_offsets.back() + frame.num_points());
    box_offsets.push_back(box_offsets.back() + frame.num_boxes());
    object_offsets.push_back(object_offsets.back() + int64_t(frame.objects.size()));
    costs.push_back(frame_cost(frame));
    ids.push_back(frame.id);
  }
  std::vector<float> points, boxes;
  std::vector<uint8_t> labels, box_labels;
  std::vector<double> calib, camera, objects;
  std::vector<uint8_t> object_types;
  points.reserve(4 * point_offsets.back());
  for (const Frame& frame : frames) {
    points.insert(points.end(), frame.points.begin(), frame.points.end());
    labels.insert(labels.end(), frame.labels.begin(), frame.labels.end());
    boxes.insert(boxes.end(), frame.boxes.begin(), frame.boxes.end());
    box_labels.insert(box_labels.end(), frame.box_labels.begin(), frame.box_labels.end());
    calib.insert(calib.end(), frame.calib.begin(), frame.calib.end());
    camera.insert(camera.end(), frame.camera.begin(), frame.camera.end());
    for (const KittiObject& o : frame.objects) {
      const auto row = object_row(o);
      objects.insert(objects.end(), row.begin(), row.end());
      object_types.push_back(uint8_t(kitti_type_index(o.type)));
    }
  }

  h5::create_file_atomically(
      path,
      [&](hid_t f, const std::string& where) {
        const hsize_t num_points = hsize_t(point_offsets.back()), num_boxes = hsize_t(box_offsets.back());
        const hsize_t num_offsets = frames.size() + 1;
        h5::write_attr_string(f, "schema", kSchema, where);
        h5::write_attr_int(f, "version", kVersion, where);
        h5::write_attr_string(f, "source", source, where);
        h5::write_attr_int(f, "frames", int64_t(frames.size()), where);
        h5::write_attr_strings(f, "class_names", {kSemanticClassNames.begin(), kSemanticClassNames.end()}, where);
        h5::write_attr_strings(f, "box_class_names", {kBoxClassNames.begin(), kBoxClassNames.end()}, where);
        h5::write_array(f, "points", H5T_NATIVE_FLOAT, H5T_IEEE_F32LE, {num_points, 4}, kPointChunkRows, points.data(),
                        where);
        h5::write_array(f, "point_offsets", H5T_NATIVE_INT64, H5T_STD_I64LE, {num_offsets}, kSmallChunkRows,
                        point_offsets.data(), where);
        if (kind.has_labels) {
          h5::write_array(f, "labels", H5T_NATIVE_UINT8, H5T_STD_U8LE, {num_points}, kLabelChunkRows, labels.data(),
                          where);
        }
        if (kind.has_boxes) {
          h5::write_array(f, "boxes", H5T_NATIVE_FLOAT, H5T_IEEE_F32LE, {num_boxes, 7}, kSmallChunkRows, boxes.data(),
                          where);
          h5::write_array(f, "box_labels", H5T_NATIVE_UINT8, H5T_STD_U8LE, {num_boxes}, kSmallChunkRows,
                          box_labels.data(), where);
          h5::write_array(f, "box_offsets", H5T_NATIVE_INT64, H5T_STD_I64LE, {num_offsets}, kSmallChunkRows,
                          box_offsets.data(), where);
        }
        if (kind.has_calib) {
          h5::write_array(f, "calib", H5T_NATIVE_DOUBLE, H5T_IEEE_F64LE, {hsize_t(frames.size()), kCalibValues},
                          kSmallChunkRows, calib.data(), where);
        }
        if (kind.has_camera) {
          h5::write_array(f, "camera", H5T_NATIVE_DOUBLE, H5T_IEEE_F64LE, {hsize_t(frames.size()), kCameraValues},
                          kSmallChunkRows, camera.data(), where);
        }
        if (kind.has_objects) {
          h5::write_attr_strings(f, "object_type_names", {kKittiTypes.begin(), kKittiTypes.end()}, where);
          h5::write_array(f, "objects", H5T_NATIVE_DOUBLE, H5T_IEEE_F64LE, {object_types.size(), kObjectValues},
                          kSmallChunkRows, objects.data(), where);
          h5::write_array(f, "object_types", H5T_NATIVE_UINT8, H5T_STD_U8LE, {object_types.size()}, kSmallChunkRows,
                          object_types.data(), where);
          h5::write_array(f, "object_offsets", H5T_NATIVE_INT64, H5T_STD_I64LE, {num_offsets}, kSmallChunkRows,
                          object_offsets.data(), where);
        }
        h5::write_strings(f, "frame_ids", ids, where);
        h5::write_array(f, "cost", H5T_NATIVE_INT64, H5T_STD_I64LE, {hsize_t(frames.size())}, kSmallChunkRows,
                        costs.data(), where);
      },
      /*expected_bytes=*/sizeof(float) * (points.size() + boxes.size()) + labels.size() + box_labels.size() +
          sizeof(double) * (calib.size() + camera.size() + objects.size()) + object_types.size() + 64 * ids.size() +
          (256 << 10));
}

// ---- reading -----------------------------------------------------------------------------------

namespace {

struct Shard {
  std::string path;
  h5::Handle file;
  h5::Handle points, labels, boxes, box_labels, calib, camera, objects, object_types;
  std::vector<int64_t> point_offsets, box_offsets, object_offsets;
  std::vector<std::string> frame_ids;
  std::vector<int64_t> costs;
  int64_t first_frame = 0;  // global index of this shard's frame 0
  int64_t num_frames() const { return int64_t(frame_ids.size()); }
};

std::vector<int64_t> read_int64_array(hid_t file, const std::string& name, hsize_t expected_length,
                                      const std::string& path) {
  const std::string where = path + ": /" + name;
  h5::Handle dataset = h5::open_dataset(file, name, path);
  const auto dims = h5::checked_dims(dataset.get(), 1, H5T_INTEGER, 8, true, where);
  require(dims[0] == expected_length,
          where + ": length " + std::to_string(dims[0]) + ", expected " + std::to_string(expected_length));
  std::vector<int64_t> values(dims[0]);
  h5::read_rows(dataset.get(), H5T_NATIVE_INT64, 0, dims[0], values.data(), where);
  return values;
}

void check_offsets(const std::vector<int64_t>& offsets, hsize_t total_rows, const std::string& where) {
  require(offsets.front() == 0, where + ": first offset is " + std::to_string(offsets.front()) + ", expected 0");
  for (size_t f = 1; f < offsets.size(); ++f) {
    require(offsets[f] >= offsets[f - 1], where + ": offsets decrease at frame " + std::to_string(f - 1));
  }
  require(offsets.back() == int64_t(total_rows), where + ": last offset " + std::to_string(offsets.back()) +
                                                     " does not match " + std::to_string(total_rows) + " rows");
}

// A float64 dataset of one row of `columns` values per frame (/calib, /camera).
h5::Handle open_per_frame_rows(hid_t f, const std::string& name, int64_t frames, size_t columns,
                               const std::string& path) {
  h5::Handle dataset = h5::open_dataset(f, name, path);
  const auto dims = h5::checked_dims(dataset.get(), 2, H5T_FLOAT, 8, true, path + ": /" + name);
  require(dims[0] == hsize_t(frames) && dims[1] == columns, path + ": /" + name + " is " + std::to_string(dims[0]) +
                                                                "x" + std::to_string(dims[1]) + ", expected " +
                                                                std::to_string(frames) + "x" + std::to_string(columns));
  return dataset;
}

Shard open_shard(const std::string& path, DatasetKind& kind, std::string& source) {
  Shard shard;
  shard.path = path;
  shard.file = h5::open_file_readonly(path);
  const hid_t f = shard.file.get();
  const int64_t version = h5::read_attr_int(f, "version", path);
  require(version >= 1 && version <= kVersion,
          path + ": schema version " + std::to_string(version) + " is not supported (expected 1 to 4)");
  const h5::Strings strings = version == 1 ? h5::Strings::any : h5::Strings::fixed_only;
  const std::string schema = h5::read_attr_string(f, "schema", path, strings);
  require(schema == kSchema, path + ": schema is '" + schema + "', expected '" + kSchema + "'");
  source = h5::read_attr_string(f, "source", path, strings);
  const int64_t frames = h5::read_attr_int(f, "frames", path);
  require(frames >= 0, path + ": negative frame count");
  kind.has_labels = h5::has_link(f, "labels");
  kind.has_boxes = h5::has_link(f, "boxes");
  kind.has_calib = version >= 3 && h5::has_link(f, "calib");
  kind.has_camera = version >= 4 && kind.has_calib && h5::has_link(f, "camera");
  kind.has_objects = version >= 4 && kind.has_calib && h5::has_link(f, "objects");

  shard.points = h5::open_dataset(f, "points", path);
  const auto point_dims = h5::checked_dims(shard.points.get(), 2, H5T_FLOAT, 4, true, path + ": /points");
  require(point_dims[1] == 4, path + ": /points has " + std::to_string(point_dims[1]) + " columns, expected 4");
  shard.point_offsets = read_int64_array(f, "point_offsets", hsize_t(frames) + 1, path);
  check_offsets(shard.point_offsets, point_dims[0], path + ": /point_offsets");
  if (kind.has_labels) {
    shard.labels = h5::open_dataset(f, "labels", path);
    const auto dims = h5::checked_dims(shard.labels.get(), 1, H5T_INTEGER, 1, false, path + ": /labels");
    require(dims[0] == point_dims[0], path + ": /labels has " + std::to_string(dims[0]) + " rows for " +
                                          std::to_string(point_dims[0]) + " points");
  }
  if (kind.has_boxes) {
    shard.boxes = h5::open_dataset(f, "boxes", path);
    const auto box_dims = h5::checked_dims(shard.boxes.get(), 2, H5T_FLOAT, 4, true, path + ": /boxes");
    require(box_dims[1] == 7, path + ": /boxes has " + std::to_string(box_dims[1]) + " columns, expected 7");
    shard.box_labels = h5::open_dataset(f, "box_labels", path);
    const auto label_dims = h5::checked_dims(shard.box_labels.get(), 1, H5T_INTEGER, 1, false, path + ": /box_labels");
    require(label_dims[0] == box_dims[0], path + ": /box_labels and /boxes differ in length");
    shard.box_offsets = read_int64_array(f, "box_offsets", hsize_t(frames) + 1, path);
    check_offsets(shard.box_offsets, box_dims[0], path + ": /box_offsets");
  } else {
    shard.box_offsets.assign(size_t(frames) + 1, 0);
  }
  if (kind.has_calib) shard.calib = open_per_frame_rows(f, "calib", frames, kCalibValues, path);
  if (kind.has_camera) shard.camera = open_per_frame_rows(f, "camera", frames, kCameraValues, path);
  if (kind.has_objects) {
    shard.objects = h5::open_dataset(f, "objects", path);
    const auto dims = h5::checked_dims(shard.objects.get(), 2, H5T_FLOAT, 8, true, path + ": /objects");
    require(dims[1] == kObjectValues,
            path + ": /objects has " + std::to_string(dims[1]) + " columns, expected " + std::to_string(kObjectValues));
    shard.object_types = h5::open_dataset(f, "object_types", path);
    const auto type_dims =
        h5::checked_dims(shard.object_types.get(), 1, H5T_INTEGER, 1, false, path + ": /object_types");
    require(type_dims[0] == dims[0], path + ": /object_types and /objects differ in length");
    shard.object_offsets = read_int64_array(f, "object_offsets", hsize_t(frames) + 1, path);
    check_offsets(shard.object_offsets, dims[0], path + ": /object_offsets");
  }
  h5::Handle ids = h5::open_dataset(f, "frame_ids", path);
  shard.frame_ids = h5::read_strings(ids.get(), path + ": /frame_ids", strings);
  require(int64_t(shard.frame_ids.size()) == frames, path + ": /frame_ids has " +
                                                         std::to_string(shard.frame_ids.size()) + " entries for " +
                                                         std::to_string(frames) + " frames");
  shard.costs = read_int64_array(f, "cost", hsize_t(frames), path);
  for (int64_t i = 0; i < frames; ++i) {
    require(shard.costs[i] >= 0, path + ": frame " + shard.frame_ids[i] + ": negative cost");
  }
  return shard;
}

}  // namespace

struct DatasetReader::Impl {
  std::vector<Shard> shards;
  std::vector<std::string> shard_paths;
  DatasetKind kind;
  std::string source;
  std::vector<int64_t> costs, points_per_frame, boxes_per_frame;
  std::vector<uint64_t> shard_fingerprints;
};

DatasetReader::DatasetReader(const std::string& path) : impl_(std::make_unique<Impl>()) {
  const std::lock_guard<std::recursive_mutex> lock(h5::library_mutex());
  std::error_code ec;
  require(fs::exists(path, ec), path + ": no such dataset directory or shard");
  if (fs::is_directory(path, ec)) {
    for (const auto& entry : fs::directory_iterator(path)) {
      if (entry.path().extension() == ".h5") impl_->shard_paths.push_back(entry.path().string());
    }
    std::sort(impl_->shard_paths.begin(), impl_->shard_paths.end());
    require(!impl_->shard_paths.empty(), path + ": no *.h5 shards in the dataset directory");
  } else {
    impl_->shard_paths.push_back(path);
  }
  int64_t first_frame = 0;
  for (const std::string& shard_path : impl_->shard_paths) {
    DatasetKind kind;
    std::string source;
    Shard shard = open_shard(shard_path, kind, source);
    if (impl_->shards.empty()) {
      impl_->kind = kind;
      impl_->source = source;
    } else {
      require(kind == impl_->kind, shard_path + ": has different datasets (labels/boxes/calib/camera/objects) than " +
                                       impl_->shard_paths.front());
    }
    shard.first_frame = first_frame;
    first_frame += shard.num_frames();
    uint64_t fingerprint =
        stream_key(std::hash<std::string>{}(fs::path(shard_path).filename().string()), uint64_t(shard.num_frames()));
    for (int64_t f = 0; f < shard.num_frames(); ++f) {
      impl_->costs.push_back(shard.costs[f]);
      impl_->points_per_frame.push_back(shard.point_offsets[f + 1] - shard.point_offsets[f]);
      impl_->boxes_per_frame.push_back(shard.box_offsets[f + 1] - shard.box_offsets[f]);
      fingerprint = stream_key(fingerprint ^ std::hash<std::string>{}(shard.frame_ids[f]),
                               uint64_t(impl_->points_per_frame.back()) ^ (uint64_t(impl_->costs.back()) << 32),
                               uint64_t(impl_->boxes_per_frame.back()));
    }
    impl_->shard_fingerprints.push_back(fingerprint);
    impl_->shards.push_back(std::move(shard));
  }
}

DatasetReader::~DatasetReader() {
  const std::lock_guard<std::recursive_mutex> lock(h5::library_mutex());
  impl_.reset();  // closes the shards' HDF5 handles under the lock
}
DatasetReader::DatasetReader(DatasetReader&&) noexcept = default;
DatasetReader& DatasetReader::operator=(DatasetReader&&) noexcept = default;

int64_t DatasetReader::num_frames() const {
  return int64_t(impl_->costs.size());
}
const DatasetKind& DatasetReader::kind() const {
  return impl_->kind;
}
const std::string& DatasetReader::source() const {
  return impl_->source;
}
const std::vector<std::string>& DatasetReader::shard_paths() const {
  return impl_->shard_paths;
}
const std::vector<int64_t>& DatasetReader::costs() const {
  return impl_->costs;
}
const std::vector<int64_t>& DatasetReader::points_per_frame() const {
  return impl_->points_per_frame;
}
const std::vector<int64_t>& DatasetReader::boxes_per_frame() const {
  return impl_->boxes_per_frame;
}
const std::vector<uint64_t>& DatasetReader::shard_fingerprints() const {
  return impl_->shard_fingerprints;
}

const std::string& DatasetReader::frame_id(int64_t frame_index) const {
  require(frame_index >= 0 && frame_index < num_frames(),
          "frame index " + std::to_string(frame_index) + " outside 0.." + std::to_string(num_frames() - 1));
  const auto it = std::upper_bound(impl_->shards.begin(), impl_->shards.end(), frame_index,
                                   [](int64_t index, const Shard& s) { return index < s.first_frame; });
  return std::prev(it)->frame_ids[size_t(frame_index - std::prev(it)->first_frame)];
}

Frame DatasetReader::read(int64_t frame_index) const {
  const std::lock_guard<std::recursive_mutex> lock(h5::library_mutex());
  require(frame_index >= 0 && frame_index < num_frames(),
          "frame index " + std::to_string(frame_index) + " outside 0.." + std::to_string(num_frames() - 1));
  const auto it = std::upper_bound(impl_->shards.begin(), impl_->shards.end(), frame_index,
                                   [](int64_t index, const Shard& s) { return index < s.first_frame; });
  const Shard& shard = *std::prev(it);
  const int64_t local = frame_index - shard.first_frame;
  Frame frame;
  frame.id = shard.frame_ids[local];
  const std::string where = shard.path + ": frame " + frame.id;
  const hsize_t first_point = hsize_t(shard.point_offsets[local]);
  const hsize_t num_points = hsize_t(shard.point_offsets[local + 1]) - first_point;
  // Offsets come from the file: bound what one frame may make us allocate.
  require(num_points <= kMaxPointsPerFrame, where + ": " + std::to_string(num_points) +
                                                " points exceeds the limit of " + std::to_string(kMaxPointsPerFrame) +
                                                " per frame");
  frame.points.resize(4 * num_points);
  h5::read_rows(shard.points.get(), H5T_NATIVE_FLOAT, first_point, num_points, frame.points.data(),
                where + ": /points");
  if (impl_->kind.has_labels) {
    frame.labels.resize(num_points);
    h5::read_rows(shard.labels.get(), H5T_NATIVE_UINT8, first_point, num_points, frame.labels.data(),
                  where + ": /labels");
  }
  if (impl_->kind.has_boxes) {
    const hsize_t first_box = hsize_t(shard.box_offsets[local]);
    const hsize_t num_boxes = hsize_t(shard.box_offsets[local + 1]) - first_box;
    require(num_boxes <= kMaxBoxesPerFrame, where + ": " + std::to_string(num_boxes) + " boxes exceeds the limit");
    frame.boxes.resize(7 * num_boxes);
    frame.box_labels.resize(num_boxes);
    h5::read_rows(shard.boxes.get(), H5T_NATIVE_FLOAT, first_box, num_boxes, frame.boxes.data(), where + ": /boxes");
    h5::read_rows(shard.box_labels.get(), H5T_NATIVE_UINT8, first_box, num_boxes, frame.box_labels.data(),
                  where + ": /box_labels");
  }
  if (impl_->kind.has_calib) {
    frame.calib.resize(kCalibValues);
    h5::read_rows(shard.calib.get(), H5T_NATIVE_DOUBLE, hsize_t(local), 1, frame.calib.data(), where + ": /calib");
  }
  if (impl_->kind.has_camera) {
    frame.camera.resize(kCameraValues);
    h5::read_rows(shard.camera.get(), H5T_NATIVE_DOUBLE, hsize_t(local), 1, frame.camera.data(), where + ": /camera");
  }
  if (impl_->kind.has_objects) {
    const hsize_t first = hsize_t(shard.object_offsets[local]);
    const hsize_t count = hsize_t(shard.object_offsets[local + 1]) - first;
    require(count <= kMaxBoxesPerFrame, where + ": " + std::to_string(count) + " camera objects exceeds the limit");
    std::vector<double> rows(kObjectValues * count);
    std::vector<uint8_t> types(count);
    h5::read_rows(shard.objects.get(), H5T_NATIVE_DOUBLE, first, count, rows.data(), where + ": /objects");
    h5::read_rows(shard.object_types.get(), H5T_NATIVE_UINT8, first, count, types.data(), where + ": /object_types");
    for (hsize_t k = 0; k < count; ++k) {
      require(types[k] < kKittiTypes.size(),
              where + ": object " + std::to_string(k) + " has type " + std::to_string(types[k]) + ", not a KITTI type");
      frame.objects.push_back(object_of_row(&rows[kObjectValues * k], types[k]));
    }
  }
  validate_frame(frame, impl_->kind, shard.path);
  return frame;
}

}  // namespace lt
