// KITTI's protocol (src/train/kitti_eval.hpp) on hand-made frames: overlaps, the recall sampling, the
// difficulty rules, neighbour classes, DontCare regions and the minimum height.
#include <gtest/gtest.h>

#include <cmath>

#include "io/raw_formats.hpp"
#include "src/synth/scene.hpp"
#include "src/train/kitti_eval.hpp"

namespace lt {
namespace {

const KittiCamera kCamera = camera_from_values(synth::kitti_rig_camera());

// An object standing on the road `z` m ahead and `x` m to the right, its 2D box and alpha from the camera.
KittiObject object_at(const std::string& type, double x, double z, double ry = 0.3) {
  KittiObject o;
  o.type = type;
  const bool person = type == "Pedestrian" || type == "Person_sitting" || type == "Cyclist";
  o.height = person ? 1.75 : 1.5, o.width = person ? 0.6 : 1.7, o.length = person ? 0.8 : 4.0;
  o.x = x, o.y = 1.65, o.z = z, o.rotation_y = ry;
  const auto image = project_to_image(o, kCamera);
  EXPECT_TRUE(image.has_value());
  o.bbox = image->bbox;
  o.alpha = observation_angle(o);
  return o;
}

// n frames, each with one Car ground truth and (with `detect`) that same box as a detection of score s.
std::vector<KittiEvalFrame> cars(int n, bool detect = true) {
  std::vector<KittiEvalFrame> frames(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    frames[size_t(i)].truth.push_back(object_at("Car", -2 + 0.05 * i, 12 + 0.1 * i));
    if (detect) frames[size_t(i)].detections.push_back(frames[size_t(i)].truth.back());
  }
  return frames;
}

TEST(KittiOverlaps, IdenticalBoxesOverlapFullyAndShiftsAsGeometrySays) {
  const KittiObject a = object_at("Car", 0, 20, 0.0);
  EXPECT_NEAR(kitti_image_iou(a, a), 1.0, 1e-12);
  EXPECT_NEAR(kitti_bev_iou(a, a), 1.0, 1e-6);
  EXPECT_NEAR(kitti_3d_iou(a, a), 1.0, 1e-6);
  // Half the length along the length axis (ry 0: the camera's x): BEV IoU 1/3; half the height up: 3D 1/9.
  KittiObject b = a;
  b.x += 2.0;
  EXPECT_NEAR(kitti_bev_iou(a, b), 1.0 / 3.0, 1e-6);
  b.y -= 0.75;
  const double common = 2.0 * 1.7 * 0.75, volume = 4.0 * 1.7 * 1.5;
  EXPECT_NEAR(kitti_3d_iou(a, b), common / (2 * volume - common), 1e-6);
  // Turned by 90°: the footprint is 1.7 x 4 across 4 x 1.7, meeting in a 1.7 x 1.7 square.
  KittiObject c = a;
  c.rotation_y = M_PI / 2;
  EXPECT_NEAR(kitti_bev_iou(a, c), 1.7 * 1.7 / (2 * 4.0 * 1.7 - 1.7 * 1.7), 1e-6);
  // Image boxes: no +1 on pixel sizes.
  KittiObject p = a, q = a;
  p.bbox = {0, 0, 10, 10}, q.bbox = {5, 0, 15, 10};
  EXPECT_NEAR(kitti_image_iou(p, q), 50.0 / 150.0, 1e-12);
}

TEST(KittiProtocol, TheGroundTruthAsResultsScores100AndWithoutTheir2dBoxes0) {
  std::vector<KittiEvalFrame> frames = cars(50);
  const KittiMetrics m = kitti_evaluate(frames);
  EXPECT_TRUE(m.aos);
  EXPECT_EQ(m.objects[0][1], 50);
  for (int k = 0; k < kKittiOverlapSets; ++k)
    for (int metric = 0; metric < kKittiMetrics; ++metric)
      for (int d = 0; d < kKittiDifficulties; ++d) {
        EXPECT_NEAR(m.ap_r40[0][k][metric][d], 100.0, 1e-9) << k << metric << d;
        EXPECT_NEAR(m.ap_r11[0][k][metric][d], 100.0, 1e-9) << k << metric << d;
      }
  for (KittiEvalFrame& f : frames) f.detections[0].bbox = {0, 0, 0, 0};  // below every minimum height
  const KittiMetrics zero = kitti_evaluate(frames);
  for (int metric = 0; metric < kKittiMetrics; ++metric) EXPECT_EQ(zero.ap_r40[0][0][metric][1], 0.0);
}

// get_thresholds keeps one score per 1/40 of recall from the true positives: n < 41 objects found all
// give n thresholds, so R40 = (n − 1)/40 and R11 = ⌈n/4⌉/11 (the devkit's numbers for a rare class).
TEST(KittiProtocol, RecallSamplingCapsAClassWithFewerThan41Objects) {
  for (int n : {1, 4, 22, 40, 41}) {
    const KittiMetrics m = kitti_evaluate(cars(n));
    EXPECT_NEAR(m.ap_r40[0][0][2][1], 100.0 * std::min(n - 1, 40) / 40.0, 1e-9) << n;
    EXPECT_NEAR(m.ap_r11[0][0][2][1], 100.0 * std::min((n + 3) / 4, 11) / 11.0, 1e-9) << n;
  }
}

TEST(KittiProtocol, HalfTheCarsFoundAtHighScoreAndFalsePositivesBelow) {
  // 80 cars; the first 40 detected (score 0.9), 40 false positives elsewhere (score 0.5). Precision is 1
  // up to recall 0.5 and nothing is reached beyond: R40 = 20/40.
  std::vector<KittiEvalFrame> frames = cars(80, false);
  for (int i = 0; i < 80; ++i) {
    KittiObject d = i < 40 ? frames[size_t(i)].truth[0] : object_at("Car", 4, 30);
    d.score = i < 40 ? 0.9 : 0.5;
    frames[size_t(i)].detections.push_back(d);
  }
  const KittiMetrics m = kitti_evaluate(frames);
  EXPECT_NEAR(m.ap_r40[0][0][2][1], 50.0, 1e-9);
  EXPECT_NEAR(m.ap_r40[0][0][0][1], 50.0, 1e-9);
}

TEST(KittiProtocol, NeighbourClassesAndDontCareAreNeitherHitsNorFalsePositives) {
  std::vector<KittiEvalFrame> frames = cars(50);
  // A Van with a Car detection on it, in every frame: without the neighbour rule, 50 false positives.
  for (KittiEvalFrame& f : frames) {
    f.truth.push_back(object_at("Van", 3, 25));
    KittiObject d = f.truth.back();
    d.type = "Car";
    f.detections.push_back(d);
  }
  EXPECT_NEAR(kitti_evaluate(frames).ap_r40[0][0][2][1], 100.0, 1e-9);
  // A Car detection in a DontCare region: not a false positive in bbox (the Python port's rule), one in
  // BEV and 3D, where the region has no say. With the scores below the hits', only the tail moves.
  for (KittiEvalFrame& f : frames) {
    KittiObject region = object_at("Car", -6, 40);
    KittiObject d = region;
    d.score = 0.5;
    region.type = "DontCare";
    f.truth.push_back(region);
    f.detections.push_back(d);
  }
  for (KittiEvalFrame& f : frames) f.detections[0].score = 0.9;
  const KittiMetrics m = kitti_evaluate(frames);
  EXPECT_NEAR(m.ap_r40[0][0][0][1], 100.0, 1e-9);  // bbox
  EXPECT_NEAR(m.ap_r40[0][0][2][1], 100.0, 1e-9);  // 3D: the false positives score below every hit
  // Scored above the hits, they cost 3D its precision but not bbox.
  for (KittiEvalFrame& f : frames) f.detections[2].score = 0.95;
  const KittiMetrics above = kitti_evaluate(frames);
  EXPECT_NEAR(above.ap_r40[0][0][0][1], 100.0, 1e-9);
  EXPECT_NEAR(above.ap_r40[0][0][2][1], 50.0, 1e-9);
}

TEST(KittiProtocol, DifficultyFollowsOcclusionTruncationAndHeight) {
  std::vector<KittiEvalFrame> frames = cars(50);
  for (size_t i = 0; i < frames.size(); ++i) {
    KittiObject& gt = frames[i].truth[0];
    if (i % 5 == 1) gt.occluded = 1;     // not Easy
    if (i % 5 == 2) gt.occluded = 2;     // Hard only
    if (i % 5 == 3) gt.truncated = 0.4;  // Hard only
    if (i % 5 == 4) gt.occluded = 3;     // none
  }
  const KittiMetrics m = kitti_evaluate(frames);
  EXPECT_EQ(m.objects[0][0], 10);
  EXPECT_EQ(m.objects[0][1], 20);
  EXPECT_EQ(m.objects[0][2], 40);
  // Matched to an ignored object, a detection is not a false positive: every difficulty stays at its cap.
  EXPECT_NEAR(m.ap_r40[0][0][2][2], 100.0 * 39 / 40, 1e-9);
  // A far car (2D height under 25 px) counts nowhere, and its detection is ignored.
  std::vector<KittiEvalFrame> far = cars(50);
  far[0].truth.push_back(object_at("Car", 0, 75));
  EXPECT_LT(far[0].truth.back().bbox[3] - far[0].truth.back().bbox[1], 25);
  far[0].detections.push_back(far[0].truth.back());
  const KittiMetrics mf = kitti_evaluate(far);
  EXPECT_EQ(mf.objects[0][2], 50);
  EXPECT_NEAR(mf.ap_r40[0][0][2][2], 100.0, 1e-9);
}

TEST(KittiProtocol, OrientationSimilarityFollowsTheAlphaError) {
  std::vector<KittiEvalFrame> frames = cars(50);
  for (KittiEvalFrame& f : frames) f.detections[0].alpha += M_PI / 2;  // (1 + cos 90°)/2 = 0.5
  const KittiMetrics m = kitti_evaluate(frames);
  EXPECT_NEAR(m.ap_r40[0][0][3][1], 50.0, 1e-9);
  EXPECT_NEAR(m.ap_r40[0][0][0][1], 100.0, 1e-9);
  for (KittiEvalFrame& f : frames) f.detections[0].alpha = -10;  // no alpha: no AOS
  EXPECT_FALSE(kitti_evaluate(frames).aos);
}

}  // namespace
}  // namespace lt
