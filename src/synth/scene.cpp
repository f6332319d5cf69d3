#include "src/synth/scene.hpp"

#include <algorithm>
#include <cmath>

#include "io/label_map.hpp"
#include "src/common/rng.hpp"

namespace lt::synth {
namespace {

constexpr uint64_t kSceneStream = 0x5CE9E;
constexpr double kPi = 3.14159265358979323846;

double lerp(double a, double b, double t) {
  return a + (b - a) * t;
}

// Axis-aligned footprints of what has been placed, so that solids do not interpenetrate.
struct Footprint {
  float x_min, x_max, y_min, y_max;
};

class SceneBuilder {
 public:
  SceneBuilder(Scene& scene, float ground_z) : scene_(scene), ground_z_(ground_z) {
    occupied_.push_back({-3.5f, 2.5f, -1.6f, 1.6f});  // the ego vehicle and the sensor above it
  }

  float ground_z() const { return ground_z_; }

  // True (and the footprint reserved) when a rectangle centred at (x, y) fits.
  bool reserve(float x, float y, float half_length, float half_width, float heading, float margin = 0.3f) {
    const float c = std::abs(std::cos(heading)), s = std::abs(std::sin(heading));
    const float ex = half_length * c + half_width * s + margin, ey = half_length * s + half_width * c + margin;
    const Footprint f{x - ex, x + ex, y - ey, y + ey};
    for (const Footprint& o : occupied_)
      if (f.x_min < o.x_max && o.x_min < f.x_max && f.y_min < o.y_max && o.y_min < f.y_max) return false;
    occupied_.push_back(f);
    return true;
  }

  void box(float x, float y, float length, float width, float heading, float z_bottom, float z_top, uint8_t label,
           float reflectivity, int32_t object = -1) {
    scene_.prisms.push_back(Prism{x, y, length / 2, width / 2, std::cos(heading), std::sin(heading), 0.f,
                                  ground_z_ + z_bottom, ground_z_ + z_top, label, reflectivity, object});
  }
  void cylinder(float x, float y, float radius, float z_bottom, float z_top, uint8_t label, float reflectivity) {
    scene_.prisms.push_back(Prism{x, y, radius, radius, 1.f, 0.f, radius, ground_z_ + z_bottom, ground_z_ + z_top,
                                  label, reflectivity, -1});
  }
  int32_t object(float x, float y, float length, float width, float height, float heading, uint8_t box_class) {
    scene_.objects.push_back(SceneObject{{x, y, ground_z_ + height / 2, length, width, height, heading}, box_class});
    return int32_t(scene_.objects.size() - 1);
  }

 private:
  Scene& scene_;
  float ground_z_;
  std::vector<Footprint> occupied_;
};

// The y of the outer edge of the road (side = +1 left, -1 right), sidewalk included.
float street_edge_y(const GroundLayout& g, int side) {
  return g.road_center_y + side * (g.road_half_width + g.sidewalk_width);
}

bool near_cross_street(const GroundLayout& g, float x, float margin) {
  return g.has_cross_street && std::abs(x - g.cross_center_x) < g.cross_half_width + g.sidewalk_width + margin;
}

void add_car(SceneBuilder& b, Rng& rng, float x, float y, float heading) {
  const float length = float(rng.uniform(3.8, 4.9)), width = float(rng.uniform(1.65, 1.95));
  const float height = float(rng.uniform(1.4, 1.75));
  if (!b.reserve(x, y, length / 2, width / 2, heading)) return;
  const float reflectivity = float(rng.uniform(0.15, 0.6));
  const int32_t id = b.object(x, y, length, width, height, heading, kBoxCar);
  const float c = std::cos(heading), s = std::sin(heading);
  b.box(x, y, length, width, heading, 0.25f, 0.62f * height, kCar, reflectivity, id);  // body above the wheels
  b.box(x - 0.1f * length * c, y - 0.1f * length * s, 0.55f * length, 0.92f * width, heading, 0.62f * height, height,
        kCar, reflectivity, id);                                                  // cabin
  b.box(x, y, 0.8f * length, 0.9f * width, heading, 0.f, 0.25f, kCar, 0.1f, id);  // wheels and underbody
}

void add_truck(SceneBuilder& b, Rng& rng, float x, float y, float heading) {
  const float length = float(rng.uniform(7, 12)), width = float(rng.uniform(2.4, 2.6));
  if (!b.reserve(x, y, length / 2, width / 2, heading)) return;
  b.box(x, y, length, width, heading, 0.3f, float(rng.uniform(3.0, 3.8)), kTruck, float(rng.uniform(0.3, 0.6)));
}

void add_pedestrian(SceneBuilder& b, Rng& rng, float x, float y) {
  const float heading = float(rng.uniform(-kPi, kPi));
  const float length = float(rng.uniform(0.5, 0.8)), width = float(rng.uniform(0.45, 0.65));
  const float height = float(rng.uniform(1.5, 1.9));
  if (!b.reserve(x, y, length / 2, width / 2, heading, 0.2f)) return;
  const int32_t id = b.object(x, y, length, width, height, heading, kBoxPedestrian);
  b.box(x, y, 0.7f * length, 0.8f * width, heading, 0.f, height, kPerson, float(rng.uniform(0.15, 0.4)), id);
}

void add_cyclist(SceneBuilder& b, Rng& rng, float x, float y, float heading) {
  const float length = float(rng.uniform(1.6, 1.85)), width = float(rng.uniform(0.55, 0.7));
  const float height = float(rng.uniform(1.6, 1.85));
  if (!b.reserve(x, y, length / 2, width / 2, heading, 0.3f)) return;
  const int32_t id = b.object(x, y, length, width, height, heading, kBoxCyclist);
  const float reflectivity = float(rng.uniform(0.2, 0.45));
  b.box(x, y, length, 0.25f * width, heading, 0.f, 1.0f, kBicyclist, reflectivity, id);  // bicycle
  b.box(x - 0.08f * length * std::cos(heading), y - 0.08f * length * std::sin(heading), 0.4f * length, width, heading,
        0.9f, height, kBicyclist, reflectivity, id);  // rider
}

void add_tree(SceneBuilder& b, Rng& rng, float x, float y) {
  const float crown_radius = float(rng.uniform(1.2, 3.2));
  if (!b.reserve(x, y, crown_radius, crown_radius, 0.f, 0.f)) return;
  const float trunk_height = float(rng.uniform(1.8, 3.5));
  b.cylinder(x, y, float(rng.uniform(0.12, 0.35)), 0.f, trunk_height + 0.5f, kTrunk, 0.3f);
  b.cylinder(x, y, crown_radius, trunk_height, trunk_height + float(rng.uniform(2.0, 5.0)), kVegetation,
             float(rng.uniform(0.4, 0.6)));
}

void add_pole(SceneBuilder& b, Rng& rng, float x, float y, bool with_sign) {
  if (!b.reserve(x, y, 0.3f, 0.3f, 0.f, 0.f)) return;
  const float height = float(rng.uniform(3.0, 8.0));
  b.cylinder(x, y, float(rng.uniform(0.06, 0.15)), 0.f, height, kPole, 0.45f);
  if (with_sign) {
    const float sign_bottom = std::min(height - 0.8f, float(rng.uniform(1.8, 2.6)));
    b.box(x, y, 0.06f, float(rng.uniform(0.6, 1.0)), float(rng.uniform(-0.3, 0.3)), sign_bottom,
          sign_bottom + float(rng.uniform(0.5, 0.9)), kTrafficSign, 0.9f);
  }
}

GroundLayout make_ground(Rng& rng, double density) {
  GroundLayout g{};
  g.road_half_width = float(lerp(9.0, 5.0, density) + rng.uniform(-1.5, 1.5));
  g.road_center_y = float(rng.uniform(-0.6, 0.6) * g.road_half_width);
  g.sidewalk_width = rng.bernoulli(0.55 + 0.45 * density) ? float(rng.uniform(1.5, 4.0)) : 0.f;
  g.has_cross_street = rng.bernoulli(0.15 + 0.2 * density);
  g.cross_center_x = float(rng.uniform(-45, 45));
  g.cross_half_width = float(rng.uniform(4.0, 7.0));
  g.has_parking = rng.bernoulli(0.1 + 0.3 * density * density);
  g.parking_side = rng.bernoulli(0.5) ? 1.f : -1.f;
  g.parking_x_min = float(rng.uniform(-40, 0));
  g.parking_x_max = g.parking_x_min + float(rng.uniform(20, 50));
  // Open roads: dark asphalt and dry verges, which a LiDAR loses at grazing angles beyond ~20 m;
  // city streets: worn concrete and kerbs that return well.
  g.road_reflectivity = float(lerp(0.02, 0.2, density * density) + rng.uniform(-0.005, 0.005));
  g.terrain_reflectivity = float(lerp(0.12, 0.35, density * density) + rng.uniform(-0.02, 0.02));
  return g;
}

constexpr float kParkingDepthM = 22.f;

void add_buildings(SceneBuilder& b, Rng& rng, const GroundLayout& g, double density) {
  for (int side : {-1, 1}) {
    if (!rng.bernoulli(0.45 + 0.55 * density)) continue;
    const bool parking_here = g.has_parking && g.parking_side == side;
    float x = float(rng.uniform(-90, -70));
    while (x < 90) {
      float width = float(rng.uniform(8, 30));
      const float depth = float(rng.uniform(8, 20));
      const float step = width + float(lerp(25, 1, density) * rng.uniform(0.3, 1.6));
      float x_begin = x;
      if (g.has_cross_street) {  // keep the corner free: cut the building back to the longer side
        const float gap_lo = g.cross_center_x - g.cross_half_width - g.sidewalk_width - 1;
        const float gap_hi = g.cross_center_x + g.cross_half_width + g.sidewalk_width + 1;
        if (x_begin < gap_hi && x_begin + width > gap_lo) {
          const float before = gap_lo - x_begin, after = x_begin + width - gap_hi;
          if (before >= after) {
            width = before;
          } else {
            x_begin = gap_hi;
            width = after;
          }
        }
      }
      const float x_mid = x_begin + width / 2;
      const bool behind_parking = parking_here && x_mid > g.parking_x_min - 5 && x_mid < g.parking_x_max + 5;
      const float setback =
          float(lerp(rng.uniform(12, 45), rng.uniform(0.5, 5), density)) + (behind_parking ? kParkingDepthM : 0.f);
      const float y = street_edge_y(g, side) + side * (setback + depth / 2);
      if (width >= 5 && b.reserve(x_mid, y, width / 2, depth / 2, 0.f, 0.f)) {
        const float height = float(lerp(rng.uniform(3, 8), rng.uniform(6, 20), density));
        b.box(x_mid, y, width, depth, float(rng.uniform(-0.04, 0.04)), 0.f, height, kBuilding,
              float(rng.uniform(0.3, 0.6)));
      }
      x += step;
    }
  }
}

void add_roadside(SceneBuilder& b, Rng& rng, const GroundLayout& g, double density) {
  // Fences along open land.
  for (int side : {-1, 1}) {
    if (!rng.bernoulli(0.2 + 0.5 * (1 - density))) continue;
    const float y = street_edge_y(g, side) + side * float(rng.uniform(1.5, 8));
    const float length = float(rng.uniform(10, 50)), x = float(rng.uniform(-60, 60));
    if (!near_cross_street(g, x, length / 2) && b.reserve(x, y, length / 2, 0.1f, 0.f, 0.f))
      b.box(x, y, length, 0.1f, 0.f, 0.f, float(rng.uniform(0.9, 2.0)), kFence, 0.3f);
  }
  // Poles (street lights, sign posts) along the curb.
  for (int side : {-1, 1}) {
    for (float x = float(rng.uniform(-80, -50)); x < 80; x += float(rng.uniform(20, 45))) {
      if (near_cross_street(g, x, 0)) continue;
      add_pole(b, rng, x, g.road_center_y + side * (g.road_half_width + 0.5f), rng.bernoulli(0.35));
    }
  }
  // Trees and bushes beside the street.
  const int trees = int(lerp(16, 9, density) * rng.uniform(0.5, 1.5));
  for (int i = 0; i < trees; ++i) {
    const int side = rng.bernoulli(0.5) ? 1 : -1;
    const float x = float(rng.uniform(-70, 70));
    const float y = street_edge_y(g, side) + side * float(rng.uniform(1.0, lerp(25, 4, density)));
    if (!near_cross_street(g, x, 2)) add_tree(b, rng, x, y);
  }
  const int bushes = int(lerp(18, 6, density) * rng.uniform(0.5, 1.5));
  for (int i = 0; i < bushes; ++i) {
    const int side = rng.bernoulli(0.5) ? 1 : -1;
    const float x = float(rng.uniform(-60, 60));
    const float y = street_edge_y(g, side) + side * float(rng.uniform(1.0, 20));
    const float length = float(rng.uniform(1, 5)), width = float(rng.uniform(1, 2.5));
    if (!near_cross_street(g, x, 2) && b.reserve(x, y, length / 2, width / 2, 0.f, 0.f))
      b.box(x, y, length, width, 0.f, 0.f, float(rng.uniform(0.5, 1.6)), kVegetation, 0.5f);
  }
}

void add_traffic(SceneBuilder& b, Rng& rng, const GroundLayout& g, double density) {
  const int lanes = std::max(1, int(g.road_half_width / 3.5f));
  const int moving = int(lerp(3, 7, density) * rng.uniform(0.4, 1.6));
  for (int i = 0; i < moving; ++i) {
    const int lane = int(rng.below(2 * lanes)) - lanes;  // -lanes .. lanes-1
    const float y = g.road_center_y + (lane + 0.5f) * (g.road_half_width / lanes);
    const float heading = (lane < 0 ? 0.f : float(kPi)) + float(rng.uniform(-0.05, 0.05));
    if (rng.bernoulli(0.12 + 0.15 * (1 - density)))
      add_truck(b, rng, float(rng.uniform(-70, 70)), y, heading);
    else
      add_car(b, rng, float(rng.uniform(-60, 60)), y, heading);
  }
  // Parked cars along both curbs.
  const int parked = int(lerp(0, 18, density) * rng.uniform(0.5, 1.5));
  for (int i = 0; i < parked; ++i) {
    const int side = rng.bernoulli(0.5) ? 1 : -1;
    const float y = g.road_center_y + side * (g.road_half_width - 1.1f);
    add_car(b, rng, float(rng.uniform(-50, 50)), y, (side > 0 ? float(kPi) : 0.f) + float(rng.uniform(-0.08, 0.08)));
  }
  // A parking lot: rows of cars parked across the street direction.
  if (g.has_parking) {
    const float y0 = street_edge_y(g, int(g.parking_side));
    for (float row : {3.5f, 9.5f, 15.5f}) {
      for (float x = g.parking_x_min + 1.5f; x < g.parking_x_max - 1.5f; x += 2.7f) {
        if (rng.bernoulli(0.3 + 0.5 * density))
          add_car(b, rng, x, y0 + g.parking_side * row,
                  float(kPi / 2) * (rng.bernoulli(0.5) ? 1 : -1) + float(rng.uniform(-0.1, 0.1)));
      }
    }
  }
  // Pedestrians on the sidewalks (or verges) and crossing; cyclists near the curb.
  const int pedestrians = int(lerp(0, 8, density) * rng.uniform(0.2, 1.8) + (rng.bernoulli(0.3) ? 1 : 0));
  for (int i = 0; i < pedestrians; ++i) {
    const int side = rng.bernoulli(0.5) ? 1 : -1;
    float x = float(rng.uniform(-40, 40));
    float y =
        g.road_center_y + side * (g.road_half_width + std::max(g.sidewalk_width, 2.f) * float(rng.uniform(0.2, 0.8)));
    if (g.has_cross_street && rng.bernoulli(0.3)) {
      x = g.cross_center_x + float(rng.uniform(-2, 2));
      y = g.road_center_y + float(rng.uniform(-g.road_half_width, g.road_half_width));
    }
    add_pedestrian(b, rng, x, y);
  }
  const int cyclists = int(rng.uniform(0, 0.6 + 2.4 * density) + 0.3);
  for (int i = 0; i < cyclists; ++i) {
    const int side = rng.bernoulli(0.5) ? 1 : -1;
    const float y = g.road_center_y + side * (g.road_half_width - float(rng.uniform(0.5, 1.5)));
    add_cyclist(b, rng, float(rng.uniform(-35, 35)), y,
                (side > 0 ? float(kPi) : 0.f) + float(rng.uniform(-0.15, 0.15)));
  }
}

}  // namespace

uint8_t ground_label(const GroundLayout& g, float x, float y) {
  const float from_center = std::abs(y - g.road_center_y);
  const bool in_cross = g.has_cross_street && std::abs(x - g.cross_center_x) < g.cross_half_width;
  if (from_center < g.road_half_width || in_cross) return kRoad;
  const bool beside_cross =
      g.has_cross_street && std::abs(x - g.cross_center_x) < g.cross_half_width + g.sidewalk_width;
  if (from_center < g.road_half_width + g.sidewalk_width || beside_cross) return kSidewalk;
  if (g.has_parking && (y - g.road_center_y) * g.parking_side > 0 && x > g.parking_x_min && x < g.parking_x_max &&
      from_center < g.road_half_width + g.sidewalk_width + kParkingDepthM)
    return kParking;
  return kTerrain;
}

Scene make_scene(uint64_t seed, int64_t frame_index, double skew, float mount_height_m) {
  Rng rng(stream_key(seed, uint64_t(frame_index), kSceneStream));
  Scene scene;
  // Density: with skew 0 every scene is of middling density (0.5). With skew w in (0, 1] a share
  // 0.3 w of the scenes are dense city blocks and the rest open roads, pulled further apart as w
  // grows: the long-tailed per-frame cost of real drives, where a few frames hold most of the points.
  // Beyond 1 the dense tail gets rarer (share 0.3 / skew), which widens the gap between median and max.
  const double weight = std::min(skew, 1.0);
  const double dense_share = 0.35 * weight / std::max(1.0, skew);
  const double target = rng.bernoulli(dense_share) ? rng.uniform(0.75, 1.0) : rng.uniform(0.0, 0.2);
  scene.density = 0.5 + weight * (target - 0.5);
  scene.ground = make_ground(rng, scene.density);
  SceneBuilder builder(scene, -mount_height_m);
  // Objects first, then buildings, then street furniture in what room is left.
  add_traffic(builder, rng, scene.ground, scene.density);
  add_buildings(builder, rng, scene.ground, scene.density);
  add_roadside(builder, rng, scene.ground, scene.density);
  return scene;
}

}  // namespace lt::synth
