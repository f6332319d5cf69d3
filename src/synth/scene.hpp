#pragma once
// Procedural driving scenes for the synthetic LiDAR (DESIGN.md §4). A scene is flat ground split
// into regions (road, sidewalk, parking, terrain) plus vertical prisms — boxes and cylinders standing
// on or above the ground — for everything else: buildings, fences, trunks and crowns, poles and signs,
// cars, trucks, pedestrians and cyclists. Prisms are enough for a 64-beam sensor to produce the
// geometry a BEV model learns from, and they make ray casting cheap (src/synth/raycast.cpp).
//
// Coordinates are the sensor's: x forward, y left, z up, origin at the sensor, ground at z = -mount height.
#include <cstdint>
#include <vector>

#include "io/dataset.hpp"

namespace lt::synth {

struct SensorModel {
  int beams = 64;
  double top_elevation_deg = 2.0;      // HDL-64E-like: upper block +2 .. -8.33 deg,
  double split_elevation_deg = -8.33;  // lower block -8.83 .. -24.8 deg
  double bottom_elevation_deg = -24.8;
  double azimuth_step_deg = 0.2;
  double mount_height_m = 1.73;
  double max_range_m = 120.0;
  double range_noise_m = 0.02;
  double dropout = 0.02;  // returns lost whatever the surface
  // A return is kept with probability 1 - exp(-signal / return_threshold), signal = reflectivity *
  // cos(incidence) / (range / 10 m)^2: dark, grazing or far surfaces thin out as on a real sensor.
  double return_threshold = 0.01;
  std::vector<double> elevations_deg() const;
};

struct Prism {
  // Footprint: an oriented rectangle (radius == 0) or a circle (radius > 0).
  float cx, cy;
  float half_length, half_width;  // rectangle, along the heading and across it
  float cos_heading, sin_heading;
  float radius;
  float z_bottom, z_top;  // sensor frame
  uint8_t label;          // SemanticKITTI training id
  float reflectivity;     // 0..1
  int32_t object;         // index into Scene::objects, or -1
};

struct SceneObject {
  float box[7];  // x, y, z (centre), dx, dy, dz, heading
  uint8_t box_class;
};

struct GroundLayout {
  float road_center_y, road_half_width;
  float sidewalk_width;  // 0: no sidewalk
  bool has_cross_street;
  float cross_center_x, cross_half_width;
  bool has_parking;    // a parking area beyond the sidewalk on one side
  float parking_side;  // +1 left, -1 right
  float parking_x_min, parking_x_max;
  float road_reflectivity;
  float terrain_reflectivity;
};

struct Scene {
  double density = 0.5;  // 0 open highway .. 1 dense city block / parking lot
  GroundLayout ground;
  std::vector<Prism> prisms;
  std::vector<SceneObject> objects;
};

// Ground region label at (x, y).
uint8_t ground_label(const GroundLayout& ground, float x, float y);

// The scene of frame `frame_index` for `seed`: depends on nothing else, so any rank can make any frame.
// `skew` spreads the scene density over frames (0: every scene of middling density).
Scene make_scene(uint64_t seed, int64_t frame_index, double skew, float mount_height_m);

// Casts every beam of `sensor` into `scene`; returns labelled points and the boxes of objects hit at
// least `min_box_hits` times. With `visible_share`, per box returned: of the beams (within range) that
// pass through the object, the share whose first surface is the object (1: nothing stands in front).
Frame cast_frame(const Scene& scene, const SensorModel& sensor, uint64_t noise_key, int min_box_hits,
                 std::vector<float>* visible_share = nullptr);

// The KITTI rig's calibration (the calib file of training frames 000001 and 000002, a 2011_09_26 drive:
// the HDL-64E on the car's roof, the left colour camera) as the dataset's /calib and /camera rows, image
// 1242×375.
std::vector<double> kitti_rig_calib();
std::vector<double> kitti_rig_camera();

// Occlusion level (KITTI's 0 fully visible, 1 partly, 2 largely occluded) from a visible share: ≥ 0.8,
// ≥ 0.4, less.
int occlusion_level(float visible_share);

// make_scene + cast_frame with the frame id "synth/seed<S>/<index>". With `camera`, the frame also has
// the KITTI rig's calibration and camera, and its camera objects: the boxes in the camera's field of view
// as label_2 objects with their projected 2D box, truncation (io/raw_formats.hpp: project_to_image),
// alpha, and occlusion level from the ray cast.
Frame synth_frame(uint64_t seed, int64_t frame_index, double skew, const SensorModel& sensor, bool camera = true);

}  // namespace lt::synth
