// Predictions files (io/predictions.hpp) and the per-frame outputs of infer --data that a rerun reads back.
#include <gtest/gtest.h>
#include <hdf5.h>

#include <cmath>
#include <filesystem>
#include <limits>

#include "io/label_map.hpp"
#include "io/predictions.hpp"
#include "src/commands/infer_dataset.hpp"
#include "src/train/evaluate.hpp"
#include "tests/test_util.hpp"

namespace lt {
namespace {

namespace fs = std::filesystem;
using testing::fresh_dir;
using testing::input_error_of;

PredictionsHeader header_of(const std::string& model, int64_t rank = 0, int64_t ranks = 1) {
  PredictionsHeader h;
  h.model = model;
  h.point_labels = model == "semseg";
  h.checkpoint_identity = "semseg step 7 abc";
  h.dataset_id = "0123456789abcdef";
  h.rank = rank;
  h.ranks = ranks;
  h.point_range = {-40.96, -40.96, -3, 40.96, 40.96, 1};
  return h;
}

FramePrediction boxes_frame(int64_t index, int boxes) {
  FramePrediction p;
  p.frame_index = index;
  p.id = "synth/seed5/" + std::to_string(index);
  for (int b = 0; b < boxes; ++b) {
    p.boxes.insert(p.boxes.end(), {1.f / 3 + float(b), -2.5f, -0.75f, 4.1f, 1.7f, 1.5f, 0.1f * float(index)});
    p.box_labels.push_back(uint8_t(1 + b % 3));
    p.scores.push_back(0.9f - 0.1f * float(b));
  }
  return p;
}

TEST(Predictions, FilesOfSeveralRanksReadAsOneSetBitForBit) {
  const std::string dir = fresh_dir("pred_set");
  std::vector<FramePrediction> frames = {boxes_frame(2, 3), boxes_frame(0, 0), boxes_frame(1, 5)};
  {
    PredictionsWriter a(dir + "/rank-00000-of-00002.h5", header_of("bevdet", 0, 2));
    a.add(frames[0]);
    a.add(frames[1]);
    a.commit();
    PredictionsWriter b(dir + "/rank-00001-of-00002.h5", header_of("bevdet", 1, 2));
    b.add(frames[2]);
    b.commit();
  }
  EXPECT_FALSE(fs::exists(dir + "/rank-00000-of-00002.h5.tmp"));
  const PredictionsReader reader(dir);
  EXPECT_EQ(reader.num_frames(), 3);
  EXPECT_EQ(reader.header().model, "bevdet");
  EXPECT_EQ(reader.header().ranks, 2);
  EXPECT_EQ(reader.header().point_range, header_of("bevdet").point_range);
  for (const FramePrediction& want : frames) {
    const FramePrediction got = reader.read(want.frame_index);
    EXPECT_EQ(got.id, want.id);
    EXPECT_EQ(got.boxes, want.boxes);
    EXPECT_EQ(got.box_labels, want.box_labels);
    EXPECT_EQ(got.scores, want.scores);
    EXPECT_EQ(reader.count(want.frame_index), int64_t(want.box_labels.size()));
  }
  EXPECT_FALSE(reader.has(3));
}

TEST(Predictions, SemsegLabelsRoundTripAndAnUncommittedWriterLeavesNothing) {
  const std::string dir = fresh_dir("pred_semseg");
  FramePrediction p;
  p.id = "sequences/08/000000";
  for (int i = 0; i < 200000; ++i) p.labels.push_back(uint8_t(1 + i % 19));
  {
    PredictionsWriter w(dir + "/r.h5", header_of("semseg"));
    w.add(p);
    w.commit();
  }
  {
    PredictionsWriter abandoned(dir + "/s.h5", header_of("semseg"));
    abandoned.add(p);  // killed before commit: no file, no temporary
  }
  EXPECT_FALSE(fs::exists(dir + "/s.h5"));
  EXPECT_FALSE(fs::exists(dir + "/s.h5.tmp"));
  const PredictionsReader reader(dir);
  EXPECT_EQ(reader.read(0).labels, p.labels);
  FramePrediction bad = p;
  bad.labels[7] = 20;
  PredictionsWriter w(dir + "/t.h5", header_of("semseg"));
  EXPECT_EQ(input_error_of([&] { w.add(bad); }), dir + "/t.h5: frame sequences/08/000000: label is not a training id");
}

TEST(PredictionsRead, AFrameInTwoFilesOrFilesOfTwoCheckpointsAreRefused) {
  const std::string dir = fresh_dir("pred_twice");
  for (int r = 0; r < 2; ++r) {
    PredictionsWriter w(dir + "/rank-" + std::to_string(r) + ".h5", header_of("bevdet", r, 2));
    w.add(boxes_frame(4, 1));
    w.commit();
  }
  EXPECT_EQ(input_error_of([&] { PredictionsReader reader(dir); }),
            dir + "/rank-1.h5: frame synth/seed5/4 (index 4) is also in " + dir + "/rank-0.h5");
  fs::remove(dir + "/rank-1.h5");
  PredictionsHeader other = header_of("bevdet", 1, 2);
  other.checkpoint_identity = "bevdet step 9 def";
  PredictionsWriter w(dir + "/rank-1.h5", other);
  w.add(boxes_frame(5, 1));
  w.commit();
  EXPECT_EQ(input_error_of([&] { PredictionsReader reader(dir); }),
            dir + "/rank-1.h5: predictions of another model, checkpoint or dataset than " + dir + "/rank-0.h5");
  EXPECT_EQ(input_error_of([&] { PredictionsReader reader(dir + "/none"); }),
            dir + "/none: no such predictions directory");
}

TEST(PredictionsRead, DamagedOffsetsAndFlippedBitsAreErrorsNamingTheFile) {
  const std::string dir = fresh_dir("pred_damage");
  {
    PredictionsWriter w(dir + "/r.h5", header_of("bevdet"));
    w.add(boxes_frame(0, 2));
    w.add(boxes_frame(1, 2));
    w.commit();
  }
  {
    const hid_t file = H5Fopen((dir + "/r.h5").c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    const hid_t set = H5Dopen2(file, "box_offsets", H5P_DEFAULT);
    const int64_t offsets[3] = {0, 3, 1};
    H5Dwrite(set, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, offsets);
    H5Dclose(set);
    H5Fclose(file);
  }
  EXPECT_EQ(input_error_of([&] { PredictionsReader reader(dir); }),
            dir + "/r.h5: offsets decrease at frame synth/seed5/1");
  // A flipped byte in the box values: the checksum says so, naming the frame.
  {
    PredictionsWriter w(dir + "/r.h5", header_of("bevdet"));
    w.add(boxes_frame(0, 2));
    w.commit();
  }
  std::string bytes;
  {
    std::ifstream in(dir + "/r.h5", std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  const float marker = 1.f / 3;  // the first box's x
  const size_t at = bytes.find(std::string(reinterpret_cast<const char*>(&marker), 4));
  ASSERT_NE(at, std::string::npos);
  bytes[at] ^= 0x10;
  testing::write_bytes(dir + "/r.h5", bytes.data(), bytes.size());
  const std::string message = input_error_of([&] { PredictionsReader(dir).read(0); });
  EXPECT_NE(message.find(dir + "/r.h5: frame synth/seed5/0: /boxes"), std::string::npos) << message;
}

// infer --data's LiDAR-frame box text reads back as the same floats (a rerun rebuilds the rank files
// from it), and a damaged line is named.
TEST(BoxesText, ReadsBackBitForBit) {
  std::vector<Detection> detections(3);
  for (size_t i = 0; i < detections.size(); ++i) {
    for (size_t k = 0; k < 7; ++k) detections[i].box[k] = std::nextafter(float(i) * 1.1f + float(k) / 7.f, 100.f);
    detections[i].label = int(1 + i);
    detections[i].score = std::numeric_limits<float>::denorm_min() + 0.123456789f * float(i);
  }
  const std::vector<Detection> back = parse_boxes_text(boxes_text(detections), "f.txt");
  ASSERT_EQ(back.size(), detections.size());
  for (size_t i = 0; i < back.size(); ++i) {
    EXPECT_EQ(back[i].box, detections[i].box);
    EXPECT_EQ(back[i].label, detections[i].label);
    EXPECT_EQ(back[i].score, detections[i].score);
  }
  EXPECT_EQ(input_error_of([] { parse_boxes_text("Car 1 2 3 4 5 6 7\n", "f.txt"); }),
            "f.txt: line 1: expected 8 numbers after the class");
  EXPECT_EQ(input_error_of([] { parse_boxes_text("# header\nVan 1 2 3 4 5 6 7 8\n", "f.txt"); }),
            "f.txt: line 2: 'Van' is not Car, Pedestrian or Cyclist");
  EXPECT_EQ(input_error_of([] { parse_boxes_text("Car 1 2 3 4 nan 6 7 8\n", "f.txt"); }),
            "f.txt: line 1: 'nan' is not a finite number");
  const FramePrediction p = prediction_of(3, "x", detections);
  const std::vector<Detection> again = detections_of(p);
  for (size_t i = 0; i < again.size(); ++i) EXPECT_EQ(again[i].box, detections[i].box);
}

// The .label files hold raw SemanticKITTI ids through the inverse learning map; the learning map takes
// every predicted class (1..19) back to itself, so a rerun's read-back is exact.
TEST(BoxesText, LabelFilesMapBackToTheTrainingIds) {
  const auto raw_of = learning_map_inverse();
  const LearningMap map = LearningMap::semantic_kitti();
  for (int id = 1; id < kNumSemanticClasses; ++id) EXPECT_EQ(map.to_train(raw_of[size_t(id)]), id);
}

}  // namespace
}  // namespace lt
