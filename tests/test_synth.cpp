// The synthetic LiDAR: geometry of the ray caster, determinism, and what a drive should look like.
#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include "io/dataset.hpp"
#include "io/label_map.hpp"
#include "src/common/stats.hpp"
#include "src/synth/scene.hpp"
#include "tests/test_util.hpp"

namespace lt::synth {
namespace {

// A scene with nothing but flat terrain, and the sensor with no noise and no losses.
Scene empty_scene() {
  Scene scene;
  scene.ground = GroundLayout{};
  scene.ground.road_half_width = 0;
  scene.ground.terrain_reflectivity = 1.f;
  return scene;
}

SensorModel ideal_sensor() {
  SensorModel sensor;
  sensor.range_noise_m = 0;
  sensor.dropout = 0;
  sensor.return_threshold = 1e-9;
  return sensor;
}

TEST(RayCast, EmptySceneGivesRingsOnTheGroundForDownwardBeams) {
  const SensorModel sensor = ideal_sensor();
  const Frame frame = cast_frame(empty_scene(), sensor, 1, 5);
  int downward = 0;
  for (double e : sensor.elevations_deg()) downward += e < 0 ? 1 : 0;
  // Every downward beam within max range returns (those hitting beyond 120 m do not).
  int in_range = 0;
  for (double e : sensor.elevations_deg())
    if (e < 0 && sensor.mount_height_m / std::tan(-e * M_PI / 180) / std::cos(e * M_PI / 180) <= sensor.max_range_m)
      ++in_range;
  EXPECT_LE(in_range, downward);
  EXPECT_EQ(frame.num_points(), int64_t(in_range) * 1800);
  for (int64_t i = 0; i < frame.num_points(); ++i) {
    ASSERT_NEAR(frame.points[4 * i + 2], -sensor.mount_height_m, 1e-3);
    ASSERT_EQ(frame.labels[i], kTerrain);
  }
}

TEST(RayCast, WallAheadIsHitAtItsDistanceWithItsLabel) {
  Scene scene = empty_scene();
  // A 4 m high wall 10 m ahead, 40 m wide, 1 m thick.
  scene.prisms.push_back(Prism{10.5f, 0.f, 0.5f, 20.f, 1.f, 0.f, 0.f, -1.73f, 2.27f, kBuilding, 0.5f, -1});
  const Frame frame = cast_frame(scene, ideal_sensor(), 1, 5);
  int64_t wall_points = 0;
  for (int64_t i = 0; i < frame.num_points(); ++i) {
    if (frame.labels[i] != kBuilding) continue;
    ++wall_points;
    ASSERT_NEAR(frame.points[4 * i], 10.f, 1e-3);  // the near face
    ASSERT_LE(std::abs(frame.points[4 * i + 1]), 20.f);
    ASSERT_GE(frame.points[4 * i + 2], -1.73f - 1e-3);
    ASSERT_LE(frame.points[4 * i + 2], 2.27f + 1e-3);
  }
  EXPECT_GT(wall_points, 5000);
  // Nothing is seen through the wall: no ground point lies beyond it within its angular extent.
  for (int64_t i = 0; i < frame.num_points(); ++i) {
    const float x = frame.points[4 * i], y = frame.points[4 * i + 1];
    if (frame.labels[i] == kTerrain && x > 10.f) {
      ASSERT_GT(std::abs(y) / x, 19.9f / 10.f - 0.05f) << x << " " << y;
    }
  }
}

TEST(RayCast, ObjectsGetBoxesOnlyWithEnoughHitsAndTheirPointsLieInside) {
  Scene scene = empty_scene();
  scene.objects.push_back(SceneObject{{8.f, 3.f, -0.98f, 4.f, 1.8f, 1.5f, 0.3f}, kBoxCar});
  scene.prisms.push_back(
      Prism{8.f, 3.f, 2.f, 0.9f, std::cos(0.3f), std::sin(0.3f), 0.f, -1.73f, -0.23f, kCar, 0.5f, 0});
  // A pedestrian hidden behind the car's far side: no hits, so no box.
  scene.objects.push_back(SceneObject{{16.f, 6.f, -0.98f, 0.1f, 0.1f, 0.1f, 0.f}, kBoxPedestrian});
  scene.prisms.push_back(Prism{16.f, 6.f, 0.05f, 0.05f, 1.f, 0.f, 0.f, -1.73f, -1.63f, kPerson, 0.5f, 1});
  const Frame frame = cast_frame(scene, ideal_sensor(), 1, 5);
  ASSERT_EQ(frame.box_labels, (std::vector<uint8_t>{kBoxCar}));
  int64_t car_points = 0;
  for (uint8_t label : frame.labels) car_points += label == kCar ? 1 : 0;
  EXPECT_EQ(testing::points_in_box(frame.points, frame.boxes.data(), 1e-3f), car_points);
}

TEST(Synth, SameSeedAndFrameGiveIdenticalData) {
  const SensorModel sensor;
  const Frame a = synth_frame(1, 17, 1.0, sensor), b = synth_frame(1, 17, 1.0, sensor);
  EXPECT_EQ(a.points, b.points);
  EXPECT_EQ(a.labels, b.labels);
  EXPECT_EQ(a.boxes, b.boxes);
  EXPECT_EQ(a.id, "synth/seed1/000017");
  const Frame other_seed = synth_frame(2, 17, 1.0, sensor);
  EXPECT_NE(a.points, other_seed.points);
}

// Statistics over a small drive (frames are ~15 ms each).
struct DriveStats {
  std::vector<double> costs;
  std::vector<int> frames_with_label = std::vector<int>(kNumSemanticClasses, 0);
  std::vector<int> boxes = std::vector<int>(kNumBoxClasses, 0);
  int64_t min_points = INT64_MAX, max_points = 0;
};

DriveStats drive(uint64_t seed, int frames, double skew) {
  DriveStats stats;
  const SensorModel sensor;
  for (int f = 0; f < frames; ++f) {
    const Frame frame = synth_frame(seed, f, skew, sensor);
    validate_frame(frame, DatasetKind{true, true, true, true, true}, "synth");
    stats.costs.push_back(double(frame_cost(frame)));
    stats.min_points = std::min(stats.min_points, frame.num_points());
    stats.max_points = std::max(stats.max_points, frame.num_points());
    std::set<uint8_t> present(frame.labels.begin(), frame.labels.end());
    for (uint8_t label : present) stats.frames_with_label[label] += 1;
    for (int64_t b = 0; b < frame.num_boxes(); ++b) {
      stats.boxes[frame.box_labels[b]] += 1;
      EXPECT_GE(testing::points_in_box(frame.points, &frame.boxes[7 * b], 0.05f), 5) << frame.id << " box " << b;
    }
  }
  return stats;
}

TEST(Synth, ADriveLooksLikeADrive) {
  const int frames = 48;
  const DriveStats stats = drive(1, frames, 1.0);
  for (uint8_t label : {kRoad, kSidewalk, kBuilding, kVegetation, kTerrain, kCar})
    EXPECT_GT(stats.frames_with_label[label], frames / 2) << kSemanticClassNames[label];
  EXPECT_GT(stats.frames_with_label[kPerson], 0);
  EXPECT_GT(stats.frames_with_label[kBicyclist], 0);
  EXPECT_GT(stats.boxes[kBoxCar], frames);
  EXPECT_GT(stats.boxes[kBoxPedestrian], 0);
  EXPECT_GT(stats.boxes[kBoxCyclist], 0);
  EXPECT_EQ(stats.frames_with_label[kUnlabeled], 0);
  EXPECT_GE(stats.min_points, 45000);
  EXPECT_LE(stats.max_points, 130000);
  const Distribution cost = distribution_of(stats.costs);
  EXPECT_GE(cost.p90 / cost.median, 1.5) << "default skew must give long-tailed costs";
}

TEST(Synth, ZeroSkewGivesNearlyUniformCost) {
  const DriveStats stats = drive(1, 32, 0.0);
  const Distribution cost = distribution_of(stats.costs);
  EXPECT_LE(cost.p90 / cost.median, 1.15);
  EXPECT_GE(stats.min_points, 60000);
}

}  // namespace
}  // namespace lt::synth
