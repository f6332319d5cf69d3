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
    if (has_calib && fs::is_directory(root / "image_2"))
      files.image = companion(root / "image_2", files.id, ".png", bin);
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
  kind.has_objects = kind.has_boxes;
  if (kind.has_calib) {
    std::vector<double> p2;
    read_kitti_calib(frames.front().calib, &p2);
    kind.has_camera = !p2.empty();
  }
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

KittiCalib read_kitti_calib(const std::string& path, std::vector<double>* p2) {
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
  if (p2) {
    p2->clear();
    if (rows.count("P2")) {
      std::array<double, 12> values;
      take("P2", values);
      p2->assign(values.begin(), values.end());
    }
  }
  return calib;
}

std::array<int, 2> read_png_size(const std::string& path) {
  // Signature (8 bytes), then the IHDR chunk: length 13 (4), "IHDR", width and height (4 each, big-endian).
  unsigned char head[24];
  std::ifstream in(path, std::ios::binary);
  require(bool(in), path + ": cannot open image");
  in.read(reinterpret_cast<char*>(head), sizeof head);
  static const unsigned char kSignature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  require(in.gcount() == sizeof head && std::memcmp(head, kSignature, 8) == 0 && std::memcmp(head + 12, "IHDR", 4) == 0,
          path + ": not a PNG image (no signature and IHDR chunk)");
  const auto be32 = [](const unsigned char* b) {
    return (uint32_t(b[0]) << 24) | (uint32_t(b[1]) << 16) | (uint32_t(b[2]) << 8) | uint32_t(b[3]);
  };
  const uint32_t width = be32(head + 16), height = be32(head + 20);
  require(width >= 1 && width <= 65535 && height >= 1 && height <= 65535,
          path + ": image size " + std::to_string(width) + "x" + std::to_string(height) + " is not in 1..65535");
  return {int(width), int(height)};
}

std::vector<double> camera_values(const KittiCamera& camera) {
  std::vector<double> values(camera.p2.begin(), camera.p2.end());
  values.push_back(camera.width);
  values.push_back(camera.height);
  return values;
}

KittiCamera camera_from_values(const std::vector<double>& values) {
  require(values.size() == kCameraValues,
          "camera: " + std::to_string(values.size()) + " values, expected " + std::to_string(kCameraValues));
  KittiCamera camera;
  std::copy(values.begin(), values.begin() + 12, camera.p2.begin());
  require(values[12] >= 1 && values[13] >= 1,
          "camera: image size " + std::to_string(values[12]) + "x" + std::to_string(values[13]) + " is not positive");
  camera.width = int(values[12]), camera.height = int(values[13]);
  return camera;
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
    require(kitti_type_index(object.type) >= 0, where + ": '" + object.type + "' is not a KITTI object type");
    object.truncated = parse_number(tokens[1], where);
    const double occluded = parse_number(tokens[2], where);
    require(occluded == std::floor(occluded) && occluded >= -1 && occluded <= 3,
            where + ": occlusion level " + tokens[2] + ", expected 0..3 (-1: DontCare)");
    object.occluded = int(occluded);
    object.alpha = parse_number(tokens[3], where);
    for (int k = 0; k < 4; ++k) object.bbox[size_t(k)] = parse_number(tokens[4 + size_t(k)], where);
    if (tokens.size() == 16) object.score = parse_number(tokens[15], where);
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

double observation_angle(const KittiObject& o) {
  double alpha = o.rotation_y - std::atan2(o.x, o.z);
  while (alpha > M_PI) alpha -= 2 * M_PI;
  while (alpha <= -M_PI) alpha += 2 * M_PI;
  return alpha;
}

std::optional<ImageBox> project_to_image(const KittiObject& o, const KittiCamera& camera) {
  constexpr double kNearDepth = 0.1;  // m: the parts of the box nearer than this (or behind) are cut off
  const Eigen::Matrix<double, 3, 4, Eigen::RowMajor> p2 =
      Eigen::Map<const Eigen::Matrix<double, 3, 4, Eigen::RowMajor>>(camera.p2.data());
  // Corners (rectified frame): x along the length, z along the width before the yaw; y from the bottom up.
  const double c = std::cos(o.rotation_y), s = std::sin(o.rotation_y);
  Eigen::Vector3d corners[8];  // homogeneous pixels (u·w, v·w, w)
  for (int k = 0; k < 8; ++k) {
    const double lx = (k & 1 ? 0.5 : -0.5) * o.length, lz = (k & 2 ? 0.5 : -0.5) * o.width;
    const double ly = k & 4 ? -o.height : 0.0;
    const Eigen::Vector4d p(o.x + c * lx + s * lz, o.y + ly, o.z - s * lx + c * lz, 1.0);
    corners[k] = p2 * p;
  }
  double left = INFINITY, top = INFINITY, right = -INFINITY, bottom = -INFINITY;
  const auto add = [&](const Eigen::Vector3d& h) {
    left = std::min(left, h.x() / h.z()), right = std::max(right, h.x() / h.z());
    top = std::min(top, h.y() / h.z()), bottom = std::max(bottom, h.y() / h.z());
  };
  for (const auto& h : corners)
    if (h.z() >= kNearDepth) add(h);
  // Where an edge crosses the near plane (the homogeneous image point is linear along it).
  for (int a = 0; a < 8; ++a)
    for (int bit : {1, 2, 4}) {
      const int b = a | bit;
      if (b == a) continue;
      const double wa = corners[a].z(), wb = corners[b].z();
      if ((wa >= kNearDepth) != (wb >= kNearDepth))
        add(corners[a] + (kNearDepth - wa) / (wb - wa) * (corners[b] - corners[a]));
    }
  if (!(left < right && top < bottom)) return std::nullopt;  // entirely behind the camera
  const double max_u = camera.width - 1, max_v = camera.height - 1;
  ImageBox box;
  box.bbox = {std::clamp(left, 0.0, max_u), std::clamp(top, 0.0, max_v), std::clamp(right, 0.0, max_u),
              std::clamp(bottom, 0.0, max_v)};
  const double inside = (box.bbox[2] - box.bbox[0]) * (box.bbox[3] - box.bbox[1]);
  if (!(inside > 0)) return std::nullopt;  // beside, above or below the image
  box.truncated = std::clamp(1.0 - inside / ((right - left) * (bottom - top)), 0.0, 1.0);
  return box;
}

std::optional<KittiObject> kitti_result(const std::array<float, 7>& box, const KittiCalib& calib,
                                        const KittiCamera& camera, const std::string& type, double score) {
  KittiObject object = lidar_box_to_kitti(box, calib, type);
  const std::optional<ImageBox> image = project_to_image(object, camera);
  if (!image) return std::nullopt;
  object.bbox = image->bbox;
  object.alpha = observation_angle(object);
  object.truncated = 0, object.occluded = 0;  // not predicted (OpenPCDet writes the same)
  object.score = score;
  return object;
}

std::string kitti_frame_name(const std::string& id, int64_t index) {
  if (!id.empty() && id.size() <= 10 && std::all_of(id.begin(), id.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return id;
  char name[32];
  std::snprintf(name, sizeof name, "%06lld", static_cast<long long>(index));
  return name;
}

std::string kitti_label_line(const KittiObject& o) {
  char line[320];
  std::snprintf(line, sizeof line, "%s %.2f %d %.2f %.2f %.2f %.2f %.2f %.2f %.2f %.2f %.2f %.2f %.2f %.2f",
                o.type.c_str(), o.truncated, o.occluded, o.alpha, o.bbox[0], o.bbox[1], o.bbox[2], o.bbox[3], o.height,
                o.width, o.length, o.x, o.y, o.z, o.rotation_y);
  return line;
}

std::string kitti_label_line(const KittiObject& o, double score) {
  char field[32];
  std::snprintf(field, sizeof field, " %.4f", score);
  return kitti_label_line(o) + field;
}

Frame load_raw_frame(RawFormat format, const RawFrameFiles& files, const LearningMap& learning_map,
                     const DatasetKind* dataset_kind) {
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
    std::vector<double> p2;
    calib = read_kitti_calib(files.calib, &p2);
    frame.calib = calib_values(*calib);
    kind.has_camera = !p2.empty();
    require(!dataset_kind || dataset_kind->has_camera == kind.has_camera,
            files.calib + (kind.has_camera ? ": has P2 and" : ": has no P2 and") +
                " the first frame's calibration has" + (kind.has_camera ? " not" : "") +
                " (a dataset's frames all have a camera or none)");
    if (kind.has_camera) {
      KittiCamera camera;
      std::copy(p2.begin(), p2.end(), camera.p2.begin());
      const std::array<int, 2> size =
          files.image.empty() ? std::array<int, 2>{kKittiImageWidth, kKittiImageHeight} : read_png_size(files.image);
      camera.width = size[0], camera.height = size[1];
      frame.camera = camera_values(camera);
    }
  }
  if (!files.boxes.empty()) {
    kind.has_boxes = true;
    require(calib.has_value(), files.boxes + ": no calibration for " + files.points);
    kind.has_objects = true;
    frame.objects = read_kitti_objects(files.boxes);
    for (const KittiObject& object : frame.objects) {
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
