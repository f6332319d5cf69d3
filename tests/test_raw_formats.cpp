// The converters against the real frames in ../shared/data/lidar (figures from its SOURCES.md).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>

#include "io/raw_formats.hpp"
#include "tests/test_util.hpp"

namespace lt {
namespace {

namespace fs = std::filesystem;
using testing::fresh_dir;
using testing::input_error_of;
using testing::points_in_box;

const std::string kData = LIDARTRAIN_SHARED_DATA;

Frame load_single(RawFormat format, const std::string& dir) {
  const auto frames = list_raw_frames(format, dir);
  EXPECT_EQ(frames.size(), 1u);
  return load_raw_frame(format, frames.at(0), LearningMap::semantic_kitti());
}

std::map<int, int64_t> histogram(const std::vector<uint8_t>& labels) {
  std::map<int, int64_t> counts;
  for (uint8_t label : labels) counts[label] += 1;
  return counts;
}

TEST(SemanticKitti, RealScanMapsToThePublishedHistogram) {
  const Frame frame = load_single(RawFormat::semantickitti, kData + "/semantickitti");
  EXPECT_EQ(frame.id, "000000");
  EXPECT_EQ(frame.num_points(), 123389);
  const std::map<int, int64_t> expected = {
      {kUnlabeled, 6924}, {kCar, 1534},       {kBicycle, 20},    {kPerson, 161},      {kRoad, 20975},
      {kParking, 84},     {kSidewalk, 30092}, {kBuilding, 2126}, {kFence, 531},       {kVegetation, 24514},
      {kTrunk, 3978},     {kTerrain, 30925},  {kPole, 413},      {kTrafficSign, 1112}};
  EXPECT_EQ(histogram(frame.labels), expected);
}

TEST(SemanticKitti, TinyFixtureAndTheOfficialSequencesLayout) {
  // The same 50-point scan, once as velodyne/+labels/ and once under sequences/00/.
  const Frame flat = load_single(RawFormat::semantickitti, kData + "/semantickitti_tiny");
  EXPECT_EQ(histogram(flat.labels),
            (std::map<int, int64_t>{{0, 3}, {kBuilding, 25}, {kVegetation, 17}, {kTrunk, 3}, {kPole, 2}}));
  const std::string root = fresh_dir("sk_sequences");
  fs::create_directories(root + "/sequences/00");
  fs::copy(kData + "/semantickitti_tiny", root + "/sequences/00", fs::copy_options::recursive);
  const auto frames = list_raw_frames(RawFormat::semantickitti, root);
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].id, "sequences/00/000000");
  EXPECT_EQ(load_raw_frame(RawFormat::semantickitti, frames[0], LearningMap::semantic_kitti()).labels, flat.labels);
}

// Points inside label_2 object `index`, tested in the rectified camera frame where KITTI defines it.
int64_t points_in_camera_box(const std::vector<float>& points, const RawFrameFiles& files, size_t index) {
  const KittiCalib calib = read_kitti_calib(files.calib);
  const KittiObject object = read_kitti_objects(files.boxes).at(index);
  const auto& r0 = calib.r0_rect;
  const auto& tr = calib.tr_velo_to_cam;
  const double c = std::cos(object.rotation_y), s = std::sin(object.rotation_y);
  int64_t count = 0;
  for (size_t i = 0; i < points.size(); i += 4) {
    double cam[3], rect[3];
    for (int r = 0; r < 3; ++r)
      cam[r] = tr[4 * r] * points[i] + tr[4 * r + 1] * points[i + 1] + tr[4 * r + 2] * points[i + 2] + tr[4 * r + 3];
    for (int r = 0; r < 3; ++r) rect[r] = r0[3 * r] * cam[0] + r0[3 * r + 1] * cam[1] + r0[3 * r + 2] * cam[2];
    const double dx = rect[0] - object.x, dz = rect[2] - object.z;
    const double along = dx * c - dz * s, across = dx * s + dz * c;  // rotation about y by -ry
    if (std::abs(along) <= object.length / 2 && std::abs(across) <= object.width / 2 && rect[1] <= object.y &&
        rect[1] >= object.y - object.height)
      ++count;
  }
  return count;
}

TEST(Kitti, RealFramesGiveTheirBoxesInTheLidarFrame) {
  const auto frames = list_raw_frames(RawFormat::kitti, kData + "/kitti");
  ASSERT_EQ(frames.size(), 3u);
  const LearningMap map = LearningMap::semantic_kitti();
  const Frame f0 = load_raw_frame(RawFormat::kitti, frames[0], map);
  const Frame f1 = load_raw_frame(RawFormat::kitti, frames[1], map);
  const Frame f2 = load_raw_frame(RawFormat::kitti, frames[2], map);
  EXPECT_EQ(f0.num_points(), 115384);
  EXPECT_EQ(f1.num_points(), 120268);
  EXPECT_EQ(f2.num_points(), 126891);
  // Truck, Misc and DontCare are not trained on.
  EXPECT_EQ(f0.box_labels, (std::vector<uint8_t>{kBoxPedestrian}));
  EXPECT_EQ(f1.box_labels, (std::vector<uint8_t>{kBoxCar, kBoxCyclist}));
  EXPECT_EQ(f2.box_labels, (std::vector<uint8_t>{kBoxCar}));
  // Each frame keeps its calibration (dataset /calib), as read from calib/.
  EXPECT_EQ(raw_dataset_kind(RawFormat::kitti, frames), (DatasetKind{false, true, true, true, true}));
  EXPECT_EQ(f1.calib, calib_values(read_kitti_calib(frames[1].calib)));
  EXPECT_EQ(calib_values(calib_from_values(f1.calib)), f1.calib);
  // SOURCES.md counts the LiDAR points inside each box, checked in the camera frame. The LiDAR-frame
  // box keeps z vertical, while the camera's y axis is tilted by a fraction of a degree (R0_rect,
  // Tr_velo_to_cam), so a point on the boundary may fall the other way: one of 376 does here.
  EXPECT_EQ(points_in_camera_box(f0.points, frames[0], 0), 376);
  EXPECT_NEAR(double(points_in_box(f0.points, &f0.boxes[0])), 376.0, 1.0);
  EXPECT_EQ(points_in_box(f1.points, &f1.boxes[0]), 9);
  EXPECT_EQ(points_in_box(f1.points, &f1.boxes[7]), 18);
  EXPECT_EQ(points_in_box(f2.points, &f2.boxes[0]), 67);
  // The pedestrian: 8.41 m ahead of the camera, sizes l w h = 1.20 0.48 1.89, ry 0.01.
  const float* ped = &f0.boxes[0];
  EXPECT_NEAR(ped[0], 8.41 + 0.27, 0.1);  // the camera sits 0.27 m behind the LiDAR
  EXPECT_NEAR(ped[3], 1.20, 1e-6);
  EXPECT_NEAR(ped[4], 0.48, 1e-6);
  EXPECT_NEAR(ped[5], 1.89, 1e-6);
  EXPECT_NEAR(ped[6], -M_PI / 2 - 0.01, 0.01);
  // Centre height: camera y 1.47 is the bottom, so the centre is 1.89/2 higher (z up).
  EXPECT_NEAR(ped[2], -(1.47 - 1.89 / 2) - 0.08, 0.05);
}

TEST(Kitti, LidarBoxesGoBackToTheirLabel2Lines) {
  // label_2 → LiDAR frame → label_2 on the real frames' calibrations: what infer --calib writes.
  for (const RawFrameFiles& files : list_raw_frames(RawFormat::kitti, kData + "/kitti")) {
    const KittiCalib calib = read_kitti_calib(files.calib);
    for (const KittiObject& object : read_kitti_objects(files.boxes)) {
      if (object.type == "DontCare") continue;
      const KittiObject back = lidar_box_to_kitti(kitti_box_to_lidar(object, calib), calib, object.type);
      EXPECT_NEAR(back.x, object.x, 1e-4) << files.id;
      EXPECT_NEAR(back.y, object.y, 1e-4) << files.id;
      EXPECT_NEAR(back.z, object.z, 1e-4) << files.id;
      EXPECT_NEAR(back.length, object.length, 1e-5);
      EXPECT_NEAR(back.width, object.width, 1e-5);
      EXPECT_NEAR(back.height, object.height, 1e-5);
      // The LiDAR-frame heading is about a vertical z; the rectified camera is tilted by a fraction of a
      // degree, so the round trip moves rotation_y by ~1e-4 rad.
      EXPECT_NEAR(std::remainder(back.rotation_y - object.rotation_y, 2 * M_PI), 0.0, 5e-4) << files.id;
      const std::string line = kitti_label_line(back, 0.75);
      EXPECT_EQ(line.rfind(object.type + " 0.00 0 -10.00 0.00 0.00 0.00 0.00 ", 0), 0u) << line;
      EXPECT_EQ(line.substr(line.size() - 7), " 0.7500");
    }
  }
}

TEST(Nuscenes, IntensityIsScaledToUnitRange) {
  const Frame frame = load_single(RawFormat::nuscenes, kData + "/nuscenes");
  EXPECT_EQ(frame.num_points(), 34688);
  float max_intensity = 0;
  for (int64_t i = 0; i < frame.num_points(); ++i) max_intensity = std::max(max_intensity, frame.points[4 * i + 3]);
  EXPECT_FLOAT_EQ(max_intensity, 1.0f);  // 255 / 255
  EXPECT_TRUE(frame.labels.empty());
  EXPECT_TRUE(frame.boxes.empty());
}

// ---- bad input: one message naming the file --------------------------------------------------

struct KittiCopy {
  std::string root;
  explicit KittiCopy(const std::string& name) : root(fresh_dir(name)) {
    fs::copy(kData + "/kitti", root, fs::copy_options::recursive);
    for (const auto& entry : fs::recursive_directory_iterator(root))
      fs::permissions(entry.path(), fs::perms::owner_write, fs::perm_options::add);
  }
  std::string load_error(int frame) const {
    return input_error_of([&] {
      const auto frames = list_raw_frames(RawFormat::kitti, root);
      load_raw_frame(RawFormat::kitti, frames.at(frame), LearningMap::semantic_kitti());
    });
  }
};

TEST(RawBadInput, TruncatedBinNamesTheFile) {
  KittiCopy copy("bad_truncated");
  const std::string bin = copy.root + "/training/velodyne/000001.bin";
  fs::resize_file(bin, fs::file_size(bin) - 3);
  const std::string message = copy.load_error(1);
  EXPECT_NE(message.find(bin), std::string::npos) << message;
  EXPECT_NE(message.find("truncated"), std::string::npos) << message;
}

TEST(RawBadInput, CalibWithoutTrVeloToCamNamesTheFile) {
  KittiCopy copy("bad_calib");
  const std::string calib = copy.root + "/training/calib/000002.txt";
  std::ifstream in(calib);
  std::string text, line;
  while (std::getline(in, line))
    if (line.rfind("Tr_velo_to_cam", 0) != 0) text += line + "\n";
  in.close();
  testing::write_bytes(calib, text.data(), text.size());
  const std::string message = copy.load_error(2);
  EXPECT_NE(message.find(calib), std::string::npos) << message;
  EXPECT_NE(message.find("Tr_velo_to_cam"), std::string::npos) << message;
}

TEST(RawBadInput, NanCoordinateNamesFileAndPoint) {
  KittiCopy copy("bad_nan");
  const std::string bin = copy.root + "/training/velodyne/000000.bin";
  auto bytes = testing::read_bytes(bin);
  const float nan = std::nanf("");
  std::memcpy(bytes.data() + 16 * 7 + 4, &nan, 4);  // y of point 7
  testing::write_bytes(bin, bytes.data(), bytes.size());
  const std::string message = copy.load_error(0);
  EXPECT_NE(message.find(bin), std::string::npos) << message;
  EXPECT_NE(message.find("point 7"), std::string::npos) << message;
}

TEST(RawBadInput, MalformedKittiLabelLineIsNamed) {
  KittiCopy copy("bad_label2");
  const std::string label = copy.root + "/training/label_2/000000.txt";
  const std::string text = "Pedestrian 0.00 0 -0.20 712.40 143.00 810.73 307.92 1.89 0.48 oops 1.84 1.47 8.41 0.01\n";
  testing::write_bytes(label, text.data(), text.size());
  const std::string message = copy.load_error(0);
  EXPECT_NE(message.find(label + ":1"), std::string::npos) << message;
}

TEST(RawBadInput, MissingLabelFileIsNamed) {
  KittiCopy copy("bad_missing_label");
  fs::remove(copy.root + "/training/label_2/000001.txt");
  const std::string message = input_error_of([&] { list_raw_frames(RawFormat::kitti, copy.root); });
  EXPECT_NE(message.find("label_2/000001.txt"), std::string::npos) << message;
}

struct SemanticKittiCopy {
  std::string root;
  explicit SemanticKittiCopy(const std::string& name) : root(fresh_dir(name)) {
    fs::copy(kData + "/semantickitti_tiny", root, fs::copy_options::recursive);
    for (const auto& entry : fs::recursive_directory_iterator(root))
      fs::permissions(entry.path(), fs::perms::owner_write, fs::perm_options::add);
  }
  std::string label_path() const { return root + "/labels/000000.label"; }
  std::string load_error() const {
    return input_error_of([&] { load_single(RawFormat::semantickitti, root); });
  }
};

TEST(RawBadInput, LabelCountDifferentFromPointCountNamesTheLabelFile) {
  SemanticKittiCopy copy("bad_label_count");
  fs::resize_file(copy.label_path(), 4 * 49);
  const std::string message = copy.load_error();
  EXPECT_NE(message.find(copy.label_path()), std::string::npos) << message;
  EXPECT_NE(message.find("49 labels for the 50 points"), std::string::npos) << message;
}

TEST(RawBadInput, UnknownRawLabelIdIsNamed) {
  SemanticKittiCopy copy("bad_label_id");
  auto bytes = testing::read_bytes(copy.label_path());
  const uint32_t unknown = (5u << 16) | 77u;  // instance 5, semantic id 77: not in the map
  std::memcpy(bytes.data() + 4 * 3, &unknown, 4);
  testing::write_bytes(copy.label_path(), bytes.data(), bytes.size());
  const std::string message = copy.load_error();
  EXPECT_NE(message.find(copy.label_path()), std::string::npos) << message;
  EXPECT_NE(message.find("point 3: raw label id 77"), std::string::npos) << message;
}

TEST(RawBadInput, MissingInputDirectoryIsNamed) {
  const std::string message = input_error_of([] { list_raw_frames(RawFormat::kitti, "/nonexistent/kitti"); });
  EXPECT_NE(message.find("/nonexistent/kitti"), std::string::npos) << message;
}

// ---- the camera: P2, image size, the annotation, results with 2D boxes (issue 32) ----------------------

TEST(KittiCamera, ConvertKeepsP2TheImageSizeAndEveryAnnotatedObject) {
  const auto frames = list_raw_frames(RawFormat::kitti, kData + "/kitti");
  const DatasetKind kind = raw_dataset_kind(RawFormat::kitti, frames);
  const Frame f0 = load_raw_frame(RawFormat::kitti, frames[0], LearningMap::semantic_kitti(), &kind);
  std::vector<double> p2;
  read_kitti_calib(frames[0].calib, &p2);
  ASSERT_EQ(p2.size(), 12u);
  EXPECT_EQ(p2[0], 7.070493e+02);  // the file's P2: fx of the 2011_09_26 drives' camera 2 differs
  const KittiCamera camera = camera_from_values(f0.camera);
  EXPECT_EQ(std::vector<double>(camera.p2.begin(), camera.p2.end()), p2);
  EXPECT_EQ(camera.width, kKittiImageWidth);  // no image_2/ here
  EXPECT_EQ(camera.height, kKittiImageHeight);
  // Every line of label_2, DontCare included, as written (000000 has one pedestrian).
  const std::vector<KittiObject> annotated = read_kitti_objects(frames[0].boxes);
  EXPECT_EQ(f0.objects, annotated);
  ASSERT_EQ(annotated.size(), 1u);
  EXPECT_EQ(annotated[0].type, "Pedestrian");
  EXPECT_EQ(annotated[0].bbox, (std::array<double, 4>{712.40, 143.00, 810.73, 307.92}));
  EXPECT_EQ(annotated[0].alpha, -0.20);
  const Frame f1 = load_raw_frame(RawFormat::kitti, frames[1], LearningMap::semantic_kitti(), &kind);
  int dontcare = 0;
  for (const KittiObject& o : f1.objects) dontcare += o.type == "DontCare";
  EXPECT_EQ(dontcare, 4);
  EXPECT_EQ(f1.objects.size(), read_kitti_objects(frames[1].boxes).size());
}

TEST(KittiCamera, TheImageSizeComesFromImage2sPngHeader) {
  KittiCopy copy("kitti_png");
  fs::create_directories(copy.root + "/training/image_2");
  // Signature, IHDR length 13, "IHDR", width 1224, height 370, then what a decoder would need (not read).
  const unsigned char png[33] = {0x89, 'P', 'N',  'G', '\r', '\n', 0x1A, '\n', 0, 0, 0, 13, 'I', 'H', 'D', 'R', 0,
                                 0,    4,   0xC8, 0,   0,    1,    0x72, 8,    2, 0, 0, 0,  0,   0,   0,   0};
  for (const char* id : {"000000", "000001", "000002"})
    testing::write_bytes(copy.root + "/training/image_2/" + id + ".png", png, sizeof png);
  const auto frames = list_raw_frames(RawFormat::kitti, copy.root);
  const KittiCamera camera =
      camera_from_values(load_raw_frame(RawFormat::kitti, frames[1], LearningMap::semantic_kitti()).camera);
  EXPECT_EQ(camera.width, 1224);
  EXPECT_EQ(camera.height, 370);
  // A zero height, and a file that is not a PNG: named.
  unsigned char flat[33];
  std::memcpy(flat, png, sizeof png);
  flat[22] = flat[23] = 0;
  testing::write_bytes(copy.root + "/training/image_2/000001.png", flat, sizeof flat);
  EXPECT_EQ(copy.load_error(1), copy.root + "/training/image_2/000001.png: image size 1224x0 is not in 1..65535");
  testing::write_bytes(copy.root + "/training/image_2/000001.png", "GIF89a and more bytes than that", 31);
  EXPECT_EQ(copy.load_error(1),
            copy.root + "/training/image_2/000001.png: not a PNG image (no signature and IHDR chunk)");
  fs::remove(copy.root + "/training/image_2/000002.png");
  EXPECT_NE(copy.load_error(2).find("image_2/000002.png: missing"), std::string::npos);
}

TEST(KittiCamera, ACalibrationWithoutP2HasNoCameraAndMayNotMixWithOnesThatHave) {
  KittiCopy copy("kitti_no_p2");
  const std::string calib = copy.root + "/training/calib/000001.txt";
  std::ifstream in(calib);
  std::string text, line;
  while (std::getline(in, line))
    if (line.rfind("P2:", 0) != 0) text += line + "\n";
  in.close();
  testing::write_bytes(calib, text.data(), text.size());
  std::vector<double> p2{1};
  read_kitti_calib(calib, &p2);
  EXPECT_TRUE(p2.empty());
  const auto frames = list_raw_frames(RawFormat::kitti, copy.root);
  const DatasetKind kind = raw_dataset_kind(RawFormat::kitti, frames);  // from frame 000000: with P2
  EXPECT_TRUE(kind.has_camera);
  EXPECT_EQ(input_error_of([&] { load_raw_frame(RawFormat::kitti, frames[1], LearningMap::semantic_kitti(), &kind); }),
            calib + ": has no P2 and the first frame's calibration has (a dataset's frames all have a camera or none)");
  EXPECT_TRUE(load_raw_frame(RawFormat::kitti, frames[1], LearningMap::semantic_kitti()).camera.empty());
}

TEST(KittiCamera, AnUnknownObjectTypeOrOcclusionLevelIsNamed) {
  KittiCopy copy("kitti_bad_type");
  const std::string label = copy.root + "/training/label_2/000000.txt";
  const std::string bad_type =
      "Spaceship 0.00 0 -0.20 712.40 143.00 810.73 307.92 1.89 0.48 1.20 1.84 1.47 8.41 0.01\n";
  testing::write_bytes(label, bad_type.data(), bad_type.size());
  EXPECT_EQ(copy.load_error(0), label + ":1: 'Spaceship' is not a KITTI object type");
  const std::string bad_occlusion = "Car 0.00 7 -0.20 712.40 143.00 810.73 307.92 1.89 0.48 1.20 1.84 1.47 8.41 0.01\n";
  testing::write_bytes(label, bad_occlusion.data(), bad_occlusion.size());
  EXPECT_EQ(copy.load_error(0), label + ":1: occlusion level 7, expected 0..3 (-1: DontCare)");
}

// The result writer on the real ground truth: each annotated object through the LiDAR frame and back as a
// label_2 result lands on its annotated 2D box within a few pixels (the annotation is the tight box of the
// object's pixels, the result the box of its projected 3D corners), with the annotated alpha.
TEST(KittiCamera, TheResultWriterPutsRealGroundTruthOnItsAnnotated2dBoxes) {
  double worst = 0, sum = 0;
  int sides = 0;
  for (const RawFrameFiles& files : list_raw_frames(RawFormat::kitti, kData + "/kitti")) {
    std::vector<double> p2;
    const KittiCalib calib = read_kitti_calib(files.calib, &p2);
    KittiCamera camera;
    std::copy(p2.begin(), p2.end(), camera.p2.begin());
    camera.width = kKittiImageWidth, camera.height = kKittiImageHeight;
    for (const KittiObject& object : read_kitti_objects(files.boxes)) {
      if (object.type == "DontCare") continue;
      const std::optional<KittiObject> result =
          kitti_result(kitti_box_to_lidar(object, calib), calib, camera, object.type, 0.5);
      ASSERT_TRUE(result.has_value()) << files.id << " " << object.type;
      EXPECT_NEAR(result->alpha, object.alpha, 0.015) << files.id << " " << object.type;  // fields of two decimals
      EXPECT_EQ(result->score, 0.5);
      for (int k = 0; k < 4; ++k) {
        const double d = std::abs(result->bbox[size_t(k)] - object.bbox[size_t(k)]);
        EXPECT_LT(d, 12.0) << files.id << " " << object.type << " side " << k;
        worst = std::max(worst, d), sum += d, ++sides;
      }
      const std::string line = kitti_label_line(*result, 0.5);
      EXPECT_EQ(line.find(" 0.00 0.00 0.00 0.00 "), std::string::npos) << line;
    }
  }
  std::printf("real KITTI: %d box sides, mean |difference| %.2f px, worst %.2f px\n", sides, sum / sides, worst);
  EXPECT_EQ(sides, 4 * 6);  // 6 objects that are not DontCare
}

TEST(KittiCamera, BoxesOutsideTheFieldOfViewAreLeftOutAndCutBoxesAreClipped) {
  std::vector<double> p2;
  const KittiCalib calib = read_kitti_calib(kData + "/kitti/training/calib/000000.txt", &p2);
  KittiCamera camera;
  std::copy(p2.begin(), p2.end(), camera.p2.begin());
  camera.width = kKittiImageWidth, camera.height = kKittiImageHeight;
  // LiDAR frame: x forward, y left. Ahead: in view, inside the image.
  const auto ahead = kitti_result({15, 0, -0.9f, 4, 1.8f, 1.5f, 0.3f}, calib, camera, "Car", 0.9);
  ASSERT_TRUE(ahead.has_value());
  EXPECT_GT(ahead->bbox[0], 0);
  EXPECT_LT(ahead->bbox[2], kKittiImageWidth - 1);
  EXPECT_NEAR(ahead->alpha, observation_angle(*ahead), 0);
  // Behind, and far to the side: not in view.
  EXPECT_FALSE(kitti_result({-15, 0, -0.9f, 4, 1.8f, 1.5f, 0}, calib, camera, "Car", 0.9).has_value());
  EXPECT_FALSE(kitti_result({2, 30, -0.9f, 4, 1.8f, 1.5f, 0}, calib, camera, "Car", 0.9).has_value());
  // Beside the car, half out of the image to the left: clipped at 0, truncated.
  const auto cut = kitti_result({4, 4.5f, -0.9f, 4, 1.8f, 1.5f, 0}, calib, camera, "Car", 0.9);
  ASSERT_TRUE(cut.has_value());
  EXPECT_EQ(cut->bbox[0], 0.0);
  KittiObject object = *cut;
  const auto image = project_to_image(object, camera);
  ASSERT_TRUE(image.has_value());
  EXPECT_GT(image->truncated, 0.1);
  EXPECT_LT(image->truncated, 1.0);
  // Partly behind the camera: only the part in front projects (a finite box, not a wrapped-around one).
  const auto straddling = kitti_result({0.5f, 2.5f, -0.9f, 4, 1.8f, 1.5f, 0}, calib, camera, "Car", 0.9);
  ASSERT_TRUE(straddling.has_value());
  for (double v : straddling->bbox) EXPECT_TRUE(std::isfinite(v));
  EXPECT_EQ(straddling->bbox[0], 0.0);
}

TEST(KittiCamera, ObservationAngleIsRotationYLessTheBearing) {
  KittiObject o;
  o.x = 5, o.z = 5, o.rotation_y = 1.0;
  EXPECT_NEAR(observation_angle(o), 1.0 - M_PI / 4, 1e-12);
  o.x = -5, o.rotation_y = 3.0;  // 3 + π/4 wraps to −π..π
  EXPECT_NEAR(observation_angle(o), 3.0 + M_PI / 4 - 2 * M_PI, 1e-12);
}

TEST(KittiCamera, FrameNamesAreKittisOrTheIndex) {
  EXPECT_EQ(kitti_frame_name("000123", 7), "000123");
  EXPECT_EQ(kitti_frame_name("synth/seed1/000042", 42), "000042");
  EXPECT_EQ(kitti_frame_name("../../etc", 3), "000003");
}

}  // namespace
}  // namespace lt
