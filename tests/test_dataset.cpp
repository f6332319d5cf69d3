// The lidartrain.dataset shard format: round trips, validation on write and on read.
#include <gtest/gtest.h>
#include <hdf5.h>

#include <cmath>
#include <filesystem>

#include "io/dataset.hpp"
#include "kernels/cpu/points.hpp"
#include "tests/hdf5_version1.hpp"
#include "tests/test_util.hpp"

namespace lt {
namespace {

namespace fs = std::filesystem;
using testing::fresh_dir;
using testing::input_error_of;

Frame make_frame(const std::string& id, int num_points, int num_boxes, int salt) {
  Frame frame;
  frame.id = id;
  for (int i = 0; i < num_points; ++i) {
    frame.points.insert(frame.points.end(), {float(i % 97) - 48.f + salt, float(i % 89) * 0.5f - 20.f,
                                             -1.7f + float(i % 7) * 0.3f, float(i % 11) / 10.f});
    frame.labels.push_back(uint8_t((i + salt) % 20));
  }
  for (int b = 0; b < num_boxes; ++b) {
    frame.boxes.insert(frame.boxes.end(), {float(b) * 3.f, float(salt), -0.9f, 4.2f, 1.8f, 1.5f, 0.1f * float(b)});
    frame.box_labels.push_back(uint8_t(1 + (b + salt) % 3));
  }
  return frame;
}

std::vector<Frame> sample_frames() {
  return {make_frame("a", 1000, 3, 0), make_frame("empty", 0, 0, 1), make_frame("b", 70000, 0, 2),
          make_frame("c", 5, 5, 3)};
}

const DatasetKind kFull{true, true};

void expect_same(const Frame& a, const Frame& b) {
  EXPECT_EQ(a.id, b.id);
  EXPECT_EQ(a.points, b.points);
  EXPECT_EQ(a.labels, b.labels);
  EXPECT_EQ(a.boxes, b.boxes);
  EXPECT_EQ(a.box_labels, b.box_labels);
  EXPECT_EQ(a.calib, b.calib);
  EXPECT_EQ(a.camera, b.camera);
  EXPECT_EQ(a.objects, b.objects);
}

TEST(Dataset, ShardRoundTripKeepsEveryFrameIncludingEmptyOnes) {
  const std::string dir = fresh_dir("roundtrip");
  const auto frames = sample_frames();
  write_shard(dir + "/shard-00000.h5", frames, kFull, "unit test");
  const DatasetReader reader(dir);
  ASSERT_EQ(reader.num_frames(), int64_t(frames.size()));
  EXPECT_EQ(reader.source(), "unit test");
  EXPECT_EQ(reader.kind(), kFull);
  for (size_t f = 0; f < frames.size(); ++f) {
    expect_same(reader.read(int64_t(f)), frames[f]);
    EXPECT_EQ(reader.points_per_frame()[f], frames[f].num_points());
    EXPECT_EQ(reader.boxes_per_frame()[f], frames[f].num_boxes());
    EXPECT_EQ(reader.costs()[f], count_points_in_cost_range(frames[f].points.data(), frames[f].num_points()));
  }
  EXPECT_FALSE(fs::exists(dir + "/shard-00000.h5.tmp"));
}

TEST(Dataset, FramesAreNumberedAcrossShardsInNameOrder) {
  const std::string dir = fresh_dir("multishard");
  const auto frames = sample_frames();
  write_shard(dir + "/shard-00001.h5", {frames[2], frames[3]}, kFull, "s");
  write_shard(dir + "/shard-00000.h5", {frames[0], frames[1]}, kFull, "s");
  const DatasetReader reader(dir);
  ASSERT_EQ(reader.num_frames(), 4);
  for (int f = 0; f < 4; ++f) expect_same(reader.read(f), frames[f]);
  EXPECT_EQ(input_error_of([&] { reader.read(4); }), "frame index 4 outside 0..3");
  for (int64_t f = 0; f < 4; ++f) EXPECT_EQ(reader.frame_id(f), reader.read(f).id);
  EXPECT_EQ(input_error_of([&] { reader.frame_id(-1); }), "frame index -1 outside 0..3");
}

TEST(Dataset, PointsOnlyDatasetHasNoLabelsOrBoxes) {
  const std::string dir = fresh_dir("points_only");
  Frame frame = make_frame("p", 10, 0, 0);
  frame.labels.clear();
  write_shard(dir + "/s.h5", {frame}, DatasetKind{}, "nuscenes");
  const DatasetReader reader(dir + "/s.h5");
  EXPECT_FALSE(reader.kind().has_labels);
  EXPECT_FALSE(reader.kind().has_boxes);
  expect_same(reader.read(0), frame);
}

TEST(Dataset, ShardsOfDifferentKindsAreRejected) {
  const std::string dir = fresh_dir("mixed");
  Frame frame = make_frame("p", 10, 0, 0);
  write_shard(dir + "/a.h5", {frame}, DatasetKind{true, true}, "s");
  frame.labels.clear();
  write_shard(dir + "/b.h5", {frame}, DatasetKind{}, "s");
  EXPECT_NE(input_error_of([&] { DatasetReader reader(dir); }).find(dir + "/b.h5"), std::string::npos);
}

// ---- validation on write -----------------------------------------------------------------------

std::string write_error(const Frame& bad, const std::string& dir) {
  return input_error_of([&] { write_shard(dir + "/bad.h5", {make_frame("fine", 5, 1, 0), bad}, kFull, "s"); });
}

TEST(DatasetWrite, RejectsNonFinitePointsNamingTheFrameAndLeavesNoFile) {
  const std::string dir = fresh_dir("write_nan");
  Frame bad = make_frame("frame-with-nan", 10, 0, 0);
  bad.points[4 * 6 + 2] = std::nanf("");
  const std::string message = write_error(bad, dir);
  EXPECT_NE(message.find("frame frame-with-nan: point 6 has a non-finite value"), std::string::npos) << message;
  EXPECT_TRUE(fs::is_empty(dir));
}

TEST(DatasetWrite, RejectsLabelsThatAreNotTrainingIds) {
  Frame bad = make_frame("l", 10, 0, 0);
  bad.labels[3] = 20;
  EXPECT_NE(write_error(bad, fresh_dir("write_label")).find("point 3 has label 20"), std::string::npos);
}

TEST(DatasetWrite, RejectsBadBoxes) {
  Frame zero_size = make_frame("z", 10, 2, 0);
  zero_size.boxes[7 + 4] = 0.f;
  EXPECT_NE(write_error(zero_size, fresh_dir("write_box")).find("box 1 has a non-positive size"), std::string::npos);
  Frame nan_box = make_frame("n", 10, 1, 0);
  nan_box.boxes[6] = std::nanf("");
  EXPECT_NE(write_error(nan_box, fresh_dir("write_box2")).find("box 0 has a non-finite value"), std::string::npos);
  Frame bad_class = make_frame("c", 10, 1, 0);
  bad_class.box_labels[0] = 4;
  EXPECT_NE(write_error(bad_class, fresh_dir("write_box3")).find("box 0 has class 4"), std::string::npos);
}

TEST(DatasetWrite, RejectsIntensityOutsideUnitRange) {
  Frame bad = make_frame("i", 10, 0, 0);
  bad.points[4 * 2 + 3] = 37.f;  // a 0..255 intensity that was never scaled
  EXPECT_NE(write_error(bad, fresh_dir("write_intensity")).find("point 2 has intensity 37"), std::string::npos);
}

// ---- validation on read ------------------------------------------------------------------------

std::string written_shard(const std::string& name) {
  const std::string dir = fresh_dir(name);
  write_shard(dir + "/shard-00000.h5", sample_frames(), kFull, "s");
  return dir + "/shard-00000.h5";
}

TEST(DatasetRead, TruncatedShardIsAnErrorNamingTheFile) {
  const std::string shard = written_shard("read_truncated");
  fs::resize_file(shard, fs::file_size(shard) / 2);
  const std::string message = input_error_of([&] {
    const DatasetReader reader(shard);
    for (int64_t f = 0; f < reader.num_frames(); ++f) reader.read(f);
  });
  EXPECT_NE(message.find(shard), std::string::npos) << message;
}

TEST(DatasetRead, FlippedBitInPointDataFailsTheChecksumNamingTheFrame) {
  const std::string shard = written_shard("read_bitflip");
  // Find where frame "b" (70000 points, the bulk of the file) is stored and flip one bit there.
  haddr_t chunk_address = 0;
  {
    hid_t file = H5Fopen(shard.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t points = H5Dopen2(file, "points", H5P_DEFAULT);
    const hsize_t chunk_of_b[2] = {32768, 0};  // frame b starts at row 1000: the second chunk is all b
    hsize_t size = 0;
    unsigned filter_mask = 0;
    ASSERT_GE(H5Dget_chunk_info_by_coord(points, chunk_of_b, &filter_mask, &chunk_address, &size), 0);
    H5Dclose(points);
    H5Fclose(file);
  }
  auto bytes = testing::read_bytes(shard);
  bytes[chunk_address + 1000] ^= 0x10;
  testing::write_bytes(shard, bytes.data(), bytes.size());
  const DatasetReader reader(shard);  // the offsets are intact: opening works
  expect_same(reader.read(0), sample_frames()[0]);
  const std::string message = input_error_of([&] { reader.read(2); });
  EXPECT_NE(message.find(shard + ": frame b: /points"), std::string::npos) << message;
  EXPECT_NE(message.find("checksum"), std::string::npos) << message;
}

TEST(DatasetRead, NotAnHdf5FileIsNamed) {
  const std::string dir = fresh_dir("read_garbage");
  const std::string text = "this is not HDF5";
  testing::write_bytes(dir + "/shard-00000.h5", text.data(), text.size());
  EXPECT_NE(input_error_of([&] { DatasetReader reader(dir); }).find(dir + "/shard-00000.h5: cannot open as HDF5"),
            std::string::npos);
}

TEST(DatasetRead, InconsistentOffsetsAreRejectedAtOpen) {
  const std::string shard = written_shard("read_offsets");
  {
    hid_t file = H5Fopen(shard.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t offsets = H5Dopen2(file, "point_offsets", H5P_DEFAULT);
    const int64_t decreasing[5] = {0, 1000, 900, 71000, 71005};
    H5Dwrite(offsets, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, decreasing);
    H5Dclose(offsets);
    H5Fclose(file);
  }
  EXPECT_NE(input_error_of([&] { DatasetReader reader(shard); }).find("/point_offsets: offsets decrease at frame 1"),
            std::string::npos);
}

TEST(DatasetRead, WrongSchemaIsRejected) {
  const std::string shard = written_shard("read_schema");
  {
    hid_t file = H5Fopen(shard.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    H5Adelete(file, "schema");
    H5Fclose(file);
  }
  EXPECT_NE(input_error_of([&] { DatasetReader reader(shard); }).find("missing attribute schema"), std::string::npos);
}

// Version 2 writes every string fixed-length (frame ids Fletcher32-checksummed like the numbers) in the
// checksummed 1.10 format; the version 1 shards earlier lidartrain wrote, with variable-length strings,
// read the same.
TEST(DatasetRead, Version1ShardsWithVariableLengthStringsStillRead) {
  const std::string dir = fresh_dir("read_v1");
  const auto frames = sample_frames();
  write_shard(dir + "/shard-00000.h5", frames, kFull, "unit test");
  {
    const hid_t file = H5Fopen((dir + "/shard-00000.h5").c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    const hid_t attr = H5Aopen(file, "schema", H5P_DEFAULT);
    const hid_t type = H5Aget_type(attr);
    EXPECT_EQ(H5Tis_variable_str(type), 0);
    H5Tclose(type);
    H5Aclose(attr);
    H5F_info2_t info;
    ASSERT_GE(H5Fget_info2(file, &info), 0);
    EXPECT_GE(info.super.version, 2u);  // the 1.10 format: checksummed superblock and object headers
    const hid_t ids = H5Dopen2(file, "frame_ids", H5P_DEFAULT);
    const hid_t dcpl = H5Dget_create_plist(ids);
    EXPECT_EQ(H5Pget_nfilters(dcpl), 1);  // Fletcher32
    H5Pclose(dcpl);
    H5Dclose(ids);
    H5Fclose(file);
  }
  testing::rewrite_as_version1(dir + "/shard-00000.h5");
  const DatasetReader reader(dir);
  EXPECT_EQ(reader.source(), "unit test");
  ASSERT_EQ(reader.num_frames(), int64_t(frames.size()));
  for (size_t f = 0; f < frames.size(); ++f) expect_same(reader.read(int64_t(f)), frames[f]);
}

// libhdf5 reads variable-length strings from a global heap without checksums (a damaged one hung the
// fuzzed reader in H5HG_read): a version 2 shard holding one is refused before it is read.
TEST(DatasetRead, Version2ShardWithAVariableLengthStringIsRefused) {
  const std::string shard = written_shard("read_v2_vlen");
  testing::rewrite_as_version1(shard);
  testing::set_version(shard, 2);
  EXPECT_EQ(input_error_of([&] { DatasetReader reader(shard); }),
            shard + ": attribute schema is a variable-length string, which only version 1 files hold");
}

// Version 3: a KITTI calibration per frame (/calib, float64 (F, 21)), bit for bit.
TEST(Dataset, CalibrationsRoundTripPerFrame) {
  const std::string dir = fresh_dir("calib");
  auto frames = sample_frames();
  for (size_t f = 0; f < frames.size(); ++f) {
    for (size_t k = 0; k < kCalibValues; ++k) frames[f].calib.push_back(1.0 / double(3 + k) + double(f) * 1e-9);
  }
  const DatasetKind kind{true, true, true};
  write_shard(dir + "/shard-00000.h5", frames, kind, "kitti");
  const DatasetReader reader(dir);
  EXPECT_EQ(reader.kind(), kind);
  for (size_t f = 0; f < frames.size(); ++f) expect_same(reader.read(int64_t(f)), frames[f]);
  EXPECT_FALSE(DatasetReader(written_shard("calib_none")).kind().has_calib);
}

TEST(DatasetWrite, RejectsACalibrationOfTheWrongSizeOrNotFinite) {
  const std::string dir = fresh_dir("calib_bad");
  auto frames = sample_frames();
  for (Frame& frame : frames) frame.calib.assign(kCalibValues, 0.5);
  frames[2].calib.pop_back();
  EXPECT_EQ(input_error_of([&] {
              write_shard(dir + "/s.h5", frames, {true, true, true}, "kitti");
            }),
            dir + "/s.h5: frame b: 20 calibration values, expected 21");
  frames[2].calib.push_back(NAN);
  EXPECT_EQ(input_error_of([&] {
              write_shard(dir + "/s.h5", frames, {true, true, true}, "kitti");
            }),
            dir + "/s.h5: frame b: calibration has a non-finite value");
  EXPECT_EQ(input_error_of([&] { write_shard(dir + "/s.h5", frames, kFull, "kitti"); }),
            dir + "/s.h5: frame a: has a calibration but the dataset has none");
  EXPECT_FALSE(fs::exists(dir + "/s.h5"));
}

// Version 4: a camera (P2, image size) and the camera annotation (every KITTI type, DontCare too) per
// frame, bit for bit; version 3 shards (calibrations, no camera) read as before.
TEST(Dataset, CamerasAndCameraObjectsRoundTripPerFrame) {
  const std::string dir = fresh_dir("camera");
  auto frames = sample_frames();
  for (size_t f = 0; f < frames.size(); ++f) {
    frames[f].calib.assign(kCalibValues, 0.25 + double(f));
    for (size_t k = 0; k < 12; ++k) frames[f].camera.push_back(1.0 / double(7 + k) + double(f));
    frames[f].camera.push_back(1242);
    frames[f].camera.push_back(375 - double(f));
    for (size_t k = 0; k < f; ++k) {  // frame 0 has none
      KittiObject o;
      o.type = kKittiTypes[(f + k) % kKittiTypes.size()];
      o.truncated = 0.1 * double(k), o.occluded = int(k % 4), o.alpha = -1.5 + double(f);
      o.bbox = {1.5, 2.25, 300.125, 200.0 + double(k)};
      o.height = 1.5, o.width = 1.75, o.length = 4.0 + double(k), o.x = -3.0, o.y = 1.625, o.z = 20 + double(f);
      o.rotation_y = 0.3;
      frames[f].objects.push_back(o);
    }
  }
  const DatasetKind kind{true, true, true, true, true};
  write_shard(dir + "/shard-00000.h5", frames, kind, "kitti");
  {
    const DatasetReader reader(dir);
    EXPECT_EQ(reader.kind(), kind);
    for (size_t f = 0; f < frames.size(); ++f) expect_same(reader.read(int64_t(f)), frames[f]);
  }
  // Marked as version 3 (what lidartrain wrote before), the same file reads without camera and objects.
  testing::set_version(dir + "/shard-00000.h5", 3);
  const DatasetReader v3(dir);
  EXPECT_EQ(v3.kind(), (DatasetKind{true, true, true}));
  EXPECT_TRUE(v3.read(2).camera.empty());
  EXPECT_TRUE(v3.read(2).objects.empty());
}

TEST(DatasetWrite, RejectsANonPositiveImageSizeAndAnUnknownObjectType) {
  const std::string dir = fresh_dir("camera_bad");
  auto frames = sample_frames();
  for (Frame& frame : frames) {
    frame.calib.assign(kCalibValues, 0.5);
    frame.camera.assign(kCameraValues, 2.0);
  }
  frames[2].camera[13] = 0;
  const DatasetKind kind{true, true, true, true, true};
  EXPECT_EQ(input_error_of([&] { write_shard(dir + "/s.h5", frames, kind, "kitti"); }),
            dir + "/s.h5: frame b: image height 0.000000 is not a whole number of pixels in 1..65535");
  frames[2].camera[13] = 375;
  frames[2].objects.emplace_back().type = "Spaceship";
  EXPECT_EQ(input_error_of([&] { write_shard(dir + "/s.h5", frames, kind, "kitti"); }),
            dir + "/s.h5: frame b: object 0: 'Spaceship' is not a KITTI object type");
  frames[2].objects[0].type = "DontCare";
  frames[2].objects[0].occluded = 5;
  EXPECT_EQ(input_error_of([&] { write_shard(dir + "/s.h5", frames, kind, "kitti"); }),
            dir + "/s.h5: frame b: object 0: occlusion level 5, expected 0..3 (-1: DontCare)");
  EXPECT_FALSE(fs::exists(dir + "/s.h5"));
}

// Version 2 shards (what lidartrain wrote before /calib) read as before: no calibrations.
TEST(DatasetRead, Version2ShardsStillRead) {
  const std::string dir = fresh_dir("read_v2");
  const auto frames = sample_frames();
  write_shard(dir + "/shard-00000.h5", frames, kFull, "unit test");
  EXPECT_EQ(testing::set_version(dir + "/shard-00000.h5", 2), 4);
  const DatasetReader reader(dir);
  EXPECT_EQ(reader.kind(), kFull);
  for (size_t f = 0; f < frames.size(); ++f) expect_same(reader.read(int64_t(f)), frames[f]);
}

TEST(DatasetRead, CalibrationOfTheWrongShapeIsRejectedAtOpen) {
  const std::string dir = fresh_dir("read_calib_shape");
  auto frames = sample_frames();
  for (Frame& frame : frames) frame.calib.assign(kCalibValues, 0.5);
  write_shard(dir + "/s.h5", frames, {true, true, true}, "kitti");
  {
    const hid_t file = H5Fopen((dir + "/s.h5").c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    H5Ldelete(file, "calib", H5P_DEFAULT);
    const hsize_t dims[2] = {4, 12};
    const hid_t space = H5Screate_simple(2, dims, nullptr);
    const hid_t set = H5Dcreate2(file, "calib", H5T_IEEE_F64LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dclose(set);
    H5Sclose(space);
    H5Fclose(file);
  }
  EXPECT_EQ(input_error_of([&] { DatasetReader reader(dir + "/s.h5"); }), dir + "/s.h5: /calib is 4x12, expected 4x21");
}

TEST(DatasetRead, MissingDirectoryIsNamed) {
  EXPECT_EQ(input_error_of([] { DatasetReader reader("/nonexistent/ds"); }),
            "/nonexistent/ds: no such dataset directory or shard");
}

}  // namespace
}  // namespace lt
