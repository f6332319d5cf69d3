#include "io/raw_formats.hpp"

#include <Eigen/Dense>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>

#include "src/common/error.hpp"

namespace lt {
namespace fs = std::filesystem;

RawFormat parse_raw_format(const std::string& name) {
  if (name == "semantickitti") return RawFormat::semantickitti;
  if (name == "kitti") return RawFormat::kitti;
  if (name == "nuscenes") return RawFormat::nuscenes;
  throw InputError("--format: '" + name + "' is not one of semantickitti, kitti, nuscenes");
}

namespace {

// Regular files in `dir` whose names end in `suffix`, sorted by name.
std::vector<fs::path> files_with_suffix(const fs::path& dir, const std::string& suffix) {
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    if (entry.is_regular_file() && name.size() > suffix.size() &&
        name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0) {
      files.push_back(entry.path());
    }
  }
  std::sort(files.begin(), files.end());
  return files;
}

std::string stem_of(const fs::path& file, const std::string& suffix) {
  const std::string name = file.filename().string();
  return name.substr(0, name.size() - suffix.size());
}

std::string companion(const fs::path& dir, const std::string& stem, const std::string& suffix,
                      const fs::path& points_file) {
  const fs::path file = dir / (stem + suffix);
  require(fs::is_regular_file(file), file.string() + ": missing (needed for " + points_file.string() + ")");
  return file.string();
}

std::vector<RawFrameFiles> list_semantickitti(const fs::path& in) {
  // Either the official tree (sequences/NN/{velodyne,labels}) or one sequence's folders directly.
  std::vector<std::pair<std::string, fs::path>> sequences;  // (id prefix, sequence dir)
  if (fs::is_directory(in / "sequences")) {
    std::vector<fs::path> dirs;
    for (const auto& entry : fs::directory_iterator(in / "sequences"))
      if (entry.is_directory()) dirs.push_back(entry.path());
    std::sort(dirs.begin(), dirs.end());
    for (const auto& dir : dirs) sequences.emplace_back("sequences/" + dir.filename().string() + "/", dir);
  } else {
    sequences.emplace_back("", in);
  }
  std::vector<RawFrameFiles> frames;
  for (const auto& [prefix, dir] : sequences) {
    require(fs::is_directory(dir / "velodyne"), (dir / "velodyne").string() + ": no such directory");
    const bool has_labels = fs::is_directory(dir / "labels");
    for (const auto& bin : files_with_suffix(dir / "velodyne", ".bin")) {
      RawFrameFiles files;
      files.id = prefix + stem_of(bin, ".bin");
      files.points = bin.string();
      if (has_labels) files.labels = companion(dir / "labels", stem_of(bin, ".bin"), ".label", bin);
      frames.push_back(files);
    }
  }
  return frames;
}

std::vector<RawFrameFiles> list_kitti(const fs::path& in) {
  const fs::path root = fs::is_directory(in / "training" / "velodyne") ? in / "training" : in;
  require(fs::is_directory(root / "velodyne"), (root / "velodyne").string() + ": no such directory");
  const bool has_boxes = fs::is_directory(root / "label_2");
  const bool has_calib = has_boxes || fs::is_directory(root / "calib");  // boxes need it; testing/ has it alone
  std::vector<RawFrameFiles> frames;
  for (const auto& bin : files_with_suffix(root / "velodyne", ".bin")) {
    RawFrameFiles files;
    files.id = stem_of(bin, ".bin");
    files.points = bin.string();
    if (has_boxes) files.boxes = companion(root / "label_2", files.id, ".txt", bin);
    if (has_calib) files.calib = companion(root / "calib", files.id, ".txt", bin);
    frames.push_back(files);
  }
  return frames;
}

std::vector<RawFrameFiles> list_nuscenes(const fs::path& in) {
  const fs::path dir = fs::is_directory(in / "samples" / "LIDAR_TOP") ? in / "samples" / "LIDAR_TOP" : in;
  std::vector<RawFrameFiles> frames;
  for (const auto& bin : files_with_suffix(dir, ".pcd.bin")) {
    RawFrameFiles files;
    files.id = stem_of(bin, ".pcd.bin");
    files.points = bin.string();
    frames.push_back(files);
  }
  return frames;
}

// Parses all of `text` as a number; nothing else on the token.
double parse_number(const std::string& token, const std::string& where) {
  size_t used = 0;
  double value = 0;
  try {
    value = std::stod(token, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  require(used == token.size() && !token.empty(), where + ": '" + token + "' is not a number");
  return value;
}

}  // namespace

std::vector<RawFrameFiles> list_raw_frames(RawFormat format, const std::string& in_dir) {
  require(fs::is_directory(in_dir), in_dir + ": no such input directory");
  std::vector<RawFrameFiles> frames;
  switch (format) {
    case RawFormat::semantickitti:
      frames = list_semantickitti(in_dir);
      break;
    case RawFormat::kitti:
      frames = list_kitti(in_dir);
      break;
    case RawFormat::nuscenes:
      frames = list_nuscenes(in_dir);
      break;
  }
  require(!frames.empty(), in_dir + ": no frames found for this format");
  return frames;
}

DatasetKind raw_dataset_kind(RawFormat format, const std::vector<RawFrameFiles>& frames) {
  DatasetKind kind;
  kind.has_labels = format == RawFormat::semantickitti && !frames.front().labels.empty();
  kind.has_boxes = format == RawFormat::kitti && !frames.front().boxes.empty();
  kind.has_calib = format == RawFormat::kitti && !frames.front().calib.empty();
  for (const auto& files : frames) {
    require((format != RawFormat::semantickitti || !files.labels.empty() == kind.has_labels) &&
                (format != RawFormat::kitti ||
                 (!files.boxes.empty() == kind.has_boxes && !files.calib.empty() == kind.has_calib)),
            files.points + ": some frames have labels, boxes or calibrations and others not");
  }
  return kind;
}

std::vector<float> read_point_file(const std::string& path, int floats_per_point, float intensity_scale) {
  std::error_code ec;
  const auto bytes = fs::file_size(path, ec);
  require(!ec, path + ": cannot read size: " + ec.message());
  const uint64_t stride = uint64_t(floats_per_point) * sizeof(float);
  require(bytes % stride == 0, path + ": " + std::to_string(bytes) + " bytes is not a whole number of " +
                                   std::to_string(floats_per_point) + "-float points (truncated?)");
  require(bytes > 0, path + ": empty point file");
  const uint64_t num_points = bytes / stride;
  std::vector<float> raw(num_points * floats_per_point);
  std::ifstream in(path, std::ios::binary);
  require(bool(in), path + ": cannot open");
  in.read(reinterpret_cast<char*>(raw.data()), std::streamsize(bytes));
  require(uint64_t(in.gcount()) == bytes, path + ": short read");
  std::vector<float> points(num_points * 4);
  for (uint64_t i = 0; i < num_points; ++i) {
    const float* src = &raw[i * floats_per_point];
    points[4 * i + 0] = src[0];
    points[4 * i + 1] = src[1];
    points[4 * i + 2] = src[2];
    points[4 * i + 3] = src[3] * intensity_scale;
  }
  return points;
}

std::vector<uint32_t> read_label_file(const std::string& path) {
  std::error_code ec;
  const auto bytes = fs::file_size(path, ec);
  require(!ec, path + ": cannot read size: " + ec.message());
  require(bytes % 4 == 0, path + ": " + std::to_string(bytes) + " bytes is not a whole number of uint32 labels");
  std::vector<uint32_t> labels(bytes / 4);
  std::ifstream in(path, std::ios::binary);
  require(bool(in), path + ": cannot open");
  in.read(reinterpret_cast<char*>(labels.data()), std::streamsize(bytes));
  require(uint64_t(in.gcount()) == bytes, path + ": short read");
  return labels;
}

std::vector<double> calib_values(const KittiCalib& calib) {
  std::vector<double> values(calib.r0_rect.begin(), calib.r0_rect.end());
  values.insert(values.end(), calib.tr_velo_to_cam.begin(), calib.tr_velo_to_cam.end());
  return values;
}

KittiCalib calib_from_values(const std::vector<double>& values) {
  require(values.size() == kCalibValues,
          "calibration: " + std::to_string(values.size()) + " values, expected " + std::to_string(kCalibValues));
  KittiCalib calib{};
  std::copy(values.begin(), values.begin() + 9, calib.r0_rect.begin());
  std::copy(values.begin() + 9, values.end(), calib.tr_velo_to_cam.begin());
  return calib;
}

KittiCalib read_kitti_calib(const std::string& path) {
  std::ifstream in(path);
  require(bool(in), path + ": cannot open calibration");
  std::map<std::string, std::vector<double>> rows;
  std::string line;
  for (int line_no = 1; std::getline(in, line); ++line_no) {
    const auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::istringstream values(line.substr(colon + 1));
    std::vector<double>& row = rows[line.substr(0, colon)];
    for (std::string token; values >> token;) row.push_back(parse_number(token, path + ":" + std::to_string(line_no)));
  }
  KittiCalib calib{};
  const auto take = [&](const std::string& key, auto& out) {
    const auto it = rows.find(key);
    require(it != rows.end(), path + ": no " + key + " (not a KITTI object calibration file?)");
    require(it->second.size() == out.size(), path + ": " + key + " has " + std::to_string(it->second.size()) +
                                                 " values, expected " + std::to_string(out.size()));
    std::copy(it->second.begin(), it->second.end(), out.begin());
  };
  take("R0_rect", calib.r0_rect);
  take("Tr_velo_to_cam", calib.tr_velo_to_cam);
  return calib;
}

std::vector<KittiObject> read_kitti_objects(const std::string& path) {
  std::ifstream in(path);
  require(bool(in), path + ": cannot open label file");
  std::vector<KittiObject> objects;
  std::string line;
  for (int line_no = 1; std::getline(in, line); ++line_no) {
    std::istringstream fields(line);
    std::vector<std::string> tokens;
    for (std::string token; fields >> token;) tokens.push_back(token);
    if (tokens.empty()) continue;
    const std::string where = path + ":" + std::to_string(line_no);
    require(tokens.size() == 15 || tokens.size() == 16,
            where + ": " + std::to_string(tokens.size()) + " fields, expected 15 (or 16 with a score)");
    KittiObject object;
    object.type = tokens[0];
    std::array<double, 7> v;
    for (int k = 0; k < 7; ++k) v[k] = parse_number(tokens[8 + k], where);
    object.height = v[0];
    object.width = v[1];
    object.length = v[2];
    object.x = v[3];
    object.y = v[4];
    object.z = v[5];
    object.rotation_y = v[6];
    objects.push_back(object);
  }
  return objects;
}

std::array<float, 7> kitti_box_to_lidar(const KittiObject& object, const KittiCalib& calib) {
  // p_rect = R0 (R p_velo + t)  =>  p_velo = R^-1 (R0^-1 p_rect - t); directions skip the t.
  const Eigen::Matrix3d r0 = Eigen::Map<const Eigen::Matrix<double, 3, 3, Eigen::RowMajor>>(calib.r0_rect.data());
  const Eigen::Matrix<double, 3, 4, Eigen::RowMajor> tr =
      Eigen::Map<const Eigen::Matrix<double, 3, 4, Eigen::RowMajor>>(calib.tr_velo_to_cam.data());
  const Eigen::Matrix3d rect_to_velo = tr.leftCols<3>().inverse() * r0.inverse();
  const Eigen::Vector3d t = tr.col(3);
  // KITTI's location is the bottom centre; the camera's y axis points down.
  const Eigen::Vector3d centre_rect(object.x, object.y - object.height / 2, object.z);
  const Eigen::Vector3d centre = rect_to_velo * centre_rect - tr.leftCols<3>().inverse() * t;
  // rotation_y turns the object's length axis from the camera's x axis about the camera's y axis.
  const Eigen::Vector3d length_axis_rect(std::cos(object.rotation_y), 0, -std::sin(object.rotation_y));
  const Eigen::Vector3d length_axis = rect_to_velo * length_axis_rect;
  return {float(centre.x()),
          float(centre.y()),
          float(centre.z()),
          float(object.length),
          float(object.width),
          float(object.height),
          float(std::atan2(length_axis.y(), length_axis.x()))};
}

KittiObject lidar_box_to_kitti(const std::array<float, 7>& box, const KittiCalib& calib, const std::string& type) {
  const Eigen::Matrix3d r0 = Eigen::Map<const Eigen::Matrix<double, 3, 3, Eigen::RowMajor>>(calib.r0_rect.data());
  const Eigen::Matrix<double, 3, 4, Eigen::RowMajor> tr =
      Eigen::Map<const Eigen::Matrix<double, 3, 4, Eigen::RowMajor>>(calib.tr_velo_to_cam.data());
  const Eigen::Vector3d centre = r0 * (tr.leftCols<3>() * Eigen::Vector3d(box[0], box[1], box[2]) + tr.col(3));
  const Eigen::Vector3d axis = r0 * tr.leftCols<3>() * Eigen::Vector3d(std::cos(box[6]), std::sin(box[6]), 0);
  KittiObject object;
  object.type = type;
  object.length = box[3], object.width = box[4], object.height = box[5];
  object.x = centre.x(), object.y = centre.y() + object.height / 2, object.z = centre.z();
  object.rotation_y = std::atan2(-axis.z(), axis.x());
  return object;
}

std::string kitti_label_line(const KittiObject& o, double score) {
  char line[256];
  std::snprintf(line, sizeof line, "%s 0.00 0 -10.00 0.00 0.00 0.00 0.00 %.2f %.2f %.2f %.2f %.2f %.2f %.2f %.4f",
                o.type.c_str(), o.height, o.width, o.length, o.x, o.y, o.z, o.rotation_y, score);
  return line;
}

Frame load_raw_frame(RawFormat format, const RawFrameFiles& files, const LearningMap& learning_map) {
  Frame frame;
  frame.id = files.id;
  const bool nuscenes = format == RawFormat::nuscenes;
  frame.points = read_point_file(files.points, nuscenes ? 5 : 4, nuscenes ? 1.f / 255.f : 1.f);
  validate_frame(frame, DatasetKind{}, files.points);  // NaN, intensity: errors name the point file
  DatasetKind kind;
  if (!files.labels.empty()) {
    kind.has_labels = true;
    const std::vector<uint32_t> raw = read_label_file(files.labels);
    require(int64_t(raw.size()) == frame.num_points(), files.labels + ": " + std::to_string(raw.size()) +
                                                           " labels for the " + std::to_string(frame.num_points()) +
                                                           " points of " + files.points);
    frame.labels.resize(raw.size());
    for (size_t i = 0; i < raw.size(); ++i) {
      const uint32_t semantic = raw[i] & 0xFFFFu;
      const int train = learning_map.to_train(semantic);
      if (train == LearningMap::kUnknownRawId)
        throw InputError(files.labels + ": point " + std::to_string(i) + ": raw label id " + std::to_string(semantic) +
                         " is not in the learning map");
      frame.labels[i] = uint8_t(train);
    }
  }
  std::optional<KittiCalib> calib;
  if (!files.calib.empty()) {
    kind.has_calib = true;
    calib = read_kitti_calib(files.calib);
    frame.calib = calib_values(*calib);
  }
  if (!files.boxes.empty()) {
    kind.has_boxes = true;
    require(calib.has_value(), files.boxes + ": no calibration for " + files.points);
    for (const KittiObject& object : read_kitti_objects(files.boxes)) {
      uint8_t box_class = 0;
      if (object.type == "Car") box_class = kBoxCar;
      if (object.type == "Pedestrian") box_class = kBoxPedestrian;
      if (object.type == "Cyclist") box_class = kBoxCyclist;
      if (box_class == 0) continue;  // Van, Truck, Misc, DontCare, ...: not trained on
      const auto box = kitti_box_to_lidar(object, *calib);
      frame.boxes.insert(frame.boxes.end(), box.begin(), box.end());
      frame.box_labels.push_back(box_class);
    }
  }
  if (kind.has_labels || kind.has_boxes || kind.has_calib)
    validate_frame(frame, kind,
                   !files.boxes.empty()    ? files.boxes
                   : !files.labels.empty() ? files.labels
                                           : files.calib);
  return frame;
}

}  // namespace lt
