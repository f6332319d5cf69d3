// The synthetic sensor: casts every beam of a spinning 64-beam LiDAR into a Scene of prisms.
//
// Per azimuth column the prisms whose angular extent covers the column are intersected once in the
// horizontal plane (an interval [t_in, t_out] of horizontal distance); each beam of the column then
// only needs its slope to find where it enters that interval's height range. Candidates are sorted by
// their nearest possible distance, so a beam stops looking once a hit is nearer than the next candidate.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

#include "io/label_map.hpp"
#include "io/raw_formats.hpp"
#include "src/common/rng.hpp"
#include "src/synth/scene.hpp"

namespace lt::synth {

std::vector<double> SensorModel::elevations_deg() const {
  // Two blocks of beams as on the HDL-64E: the upper half densely spaced near the horizon.
  std::vector<double> elevations;
  const int upper = beams / 2, lower = beams - upper;
  for (int i = 0; i < upper; ++i)
    elevations.push_back(top_elevation_deg + (split_elevation_deg - top_elevation_deg) * i / std::max(1, upper - 1));
  const double lower_top = split_elevation_deg - 0.5;
  for (int i = 0; i < lower; ++i)
    elevations.push_back(lower_top + (bottom_elevation_deg - lower_top) * i / std::max(1, lower - 1));
  return elevations;
}

namespace {

constexpr double kPi = 3.14159265358979323846;
constexpr float kInfinity = std::numeric_limits<float>::infinity();

struct Candidate {
  float t_in, t_out;  // horizontal distances along the column's direction
  float normal_dot;   // |cos| between the column direction and the entered side face's normal
  int prism;
};

// Horizontal interval of the ray o + t*(dx, dy), o = 0, through a prism's footprint.
bool footprint_interval(const Prism& p, float dx, float dy, Candidate& out) {
  if (p.radius > 0) {
    const float b = dx * p.cx + dy * p.cy;  // projection of the centre on the ray
    const float closest2 = p.cx * p.cx + p.cy * p.cy - b * b;
    const float disc = p.radius * p.radius - closest2;
    if (disc <= 0) return false;
    const float half = std::sqrt(disc);
    out.t_in = std::max(0.f, b - half);
    out.t_out = b + half;
    // At entry the radial normal's cosine with the ray is half / radius.
    out.normal_dot = half / p.radius;
    return out.t_out > 0;
  }
  // Into the box frame: rotate by -heading about the box centre.
  const float ox = -p.cx * p.cos_heading - p.cy * p.sin_heading;
  const float oy = p.cx * p.sin_heading - p.cy * p.cos_heading;
  const float ux = dx * p.cos_heading + dy * p.sin_heading;
  const float uy = -dx * p.sin_heading + dy * p.cos_heading;
  float t_in = -kInfinity, t_out = kInfinity, entry_dot = 1.f;
  const auto slab = [&](float o, float u, float half) {
    if (std::abs(u) < 1e-9f) return std::abs(o) <= half;
    float t0 = (-half - o) / u, t1 = (half - o) / u;
    if (t0 > t1) std::swap(t0, t1);
    if (t0 > t_in) {
      t_in = t0;
      entry_dot = std::abs(u);
    }
    t_out = std::min(t_out, t1);
    return true;
  };
  if (!slab(ox, ux, p.half_length) || !slab(oy, uy, p.half_width) || t_in > t_out || t_out <= 0) return false;
  out.t_in = std::max(0.f, t_in);
  out.t_out = t_out;
  out.normal_dot = entry_dot;
  return true;
}

struct Hit {
  float t = kInfinity;  // horizontal distance
  int prism = -1;       // -1: ground
  bool top = false;     // hit a horizontal face
  float normal_dot = 0;
};

}  // namespace

Frame cast_frame(const Scene& scene, const SensorModel& sensor, uint64_t noise_key, int min_box_hits,
                 std::vector<float>* visible_share) {
  const int columns = int(std::lround(360.0 / sensor.azimuth_step_deg));
  const std::vector<double> elevations = sensor.elevations_deg();
  std::vector<float> slopes, cos_elev, sin_elev;
  for (double e : elevations) {
    const double r = e * kPi / 180;
    slopes.push_back(float(std::tan(r)));
    cos_elev.push_back(float(std::cos(r)));
    sin_elev.push_back(float(std::sin(r)));
  }

  // Bin prisms by the columns their bounding circle covers.
  std::vector<std::vector<int>> column_prisms(columns);
  std::vector<float> nearest(scene.prisms.size());
  for (size_t i = 0; i < scene.prisms.size(); ++i) {
    const Prism& p = scene.prisms[i];
    const float bound = p.radius > 0 ? p.radius : std::hypot(p.half_length, p.half_width);
    const float dist = std::hypot(p.cx, p.cy);
    nearest[i] = std::max(0.f, dist - bound);
    int first = 0, last = columns - 1;
    if (dist > bound) {
      const double center = std::atan2(p.cy, p.cx) * 180 / kPi + 180;  // 0..360
      const double half = std::asin(bound / dist) * 180 / kPi;
      first = int(std::floor((center - half) / sensor.azimuth_step_deg));
      last = int(std::floor((center + half) / sensor.azimuth_step_deg));
    }
    for (int c = first; c <= last; ++c) column_prisms[((c % columns) + columns) % columns].push_back(int(i));
  }
  for (auto& list : column_prisms)
    std::sort(list.begin(), list.end(), [&](int a, int b) { return nearest[a] < nearest[b]; });

  const float ground_z = -float(sensor.mount_height_m);
  const float max_range = float(sensor.max_range_m);
  Frame frame;
  frame.points.reserve(size_t(columns) * elevations.size() * 4);
  frame.labels.reserve(size_t(columns) * elevations.size());
  std::vector<int> object_hits(scene.objects.size(), 0);
  // Per object: the rays (within range) that pass through it, and those whose first surface is it —
  // whether or not a return comes back — for `visible_share`; `last_ray` counts a ray once per object.
  std::vector<int64_t> rays_through(scene.objects.size(), 0), rays_seeing(scene.objects.size(), 0);
  std::vector<int64_t> last_ray(scene.objects.size(), -1);
  std::vector<Candidate> candidates;

  for (int c = 0; c < columns; ++c) {
    const double azimuth = (c + 0.5) * sensor.azimuth_step_deg * kPi / 180 - kPi;
    const float dx = float(std::cos(azimuth)), dy = float(std::sin(azimuth));
    candidates.clear();
    for (int i : column_prisms[c]) {
      Candidate cand;
      if (footprint_interval(scene.prisms[i], dx, dy, cand)) {
        cand.prism = i;
        candidates.push_back(cand);
      }
    }
    std::sort(candidates.begin(), candidates.end(),
              [](const Candidate& a, const Candidate& b) { return a.t_in < b.t_in; });

    for (size_t beam = 0; beam < elevations.size(); ++beam) {
      const float m = slopes[beam];
      Hit hit;
      if (m < 0) hit.t = ground_z / m, hit.top = true;
      for (const Candidate& cand : candidates) {
        if (cand.t_in >= hit.t) break;
        const Prism& p = scene.prisms[cand.prism];
        const float z_in = m * cand.t_in;
        float t = kInfinity;
        bool top = false;
        if (z_in >= p.z_bottom && z_in <= p.z_top) {
          t = cand.t_in;
        } else if (z_in > p.z_top && m < 0) {
          t = p.z_top / m, top = true;
        } else if (z_in < p.z_bottom && m > 0) {
          t = p.z_bottom / m, top = true;
        }
        if (t <= cand.t_out && t < hit.t) hit = Hit{t, cand.prism, top, cand.normal_dot};
      }
      const float range = hit.t / cos_elev[beam];
      const uint64_t ray = uint64_t(c) * elevations.size() + beam;
      if (visible_share) {
        for (const Candidate& cand : candidates) {
          const Prism& p = scene.prisms[cand.prism];
          if (p.object < 0 || last_ray[size_t(p.object)] == int64_t(ray)) continue;
          const float z_in = m * cand.t_in;
          float t = kInfinity;
          if (z_in >= p.z_bottom && z_in <= p.z_top)
            t = cand.t_in;
          else if (z_in > p.z_top && m < 0)
            t = p.z_top / m;
          else if (z_in < p.z_bottom && m > 0)
            t = p.z_bottom / m;
          if (!(t <= cand.t_out) || !(t / cos_elev[beam] <= max_range)) continue;
          if (m < 0 && t > ground_z / m) continue;  // the ground is in the way
          last_ray[size_t(p.object)] = int64_t(ray);
          rays_through[size_t(p.object)] += 1;
        }
        if (hit.prism >= 0 && scene.prisms[hit.prism].object >= 0 && range <= max_range)
          rays_seeing[size_t(scene.prisms[hit.prism].object)] += 1;
      }
      if (!(range <= max_range)) continue;

      Rng rng(stream_key(noise_key, ray));
      const float cos_incidence = hit.top ? std::abs(sin_elev[beam]) : hit.normal_dot * cos_elev[beam];
      float reflectivity;
      uint8_t label;
      const float hx = dx * hit.t, hy = dy * hit.t;
      if (hit.prism < 0) {
        label = ground_label(scene.ground, hx, hy);
        reflectivity = label == kRoad       ? scene.ground.road_reflectivity
                       : label == kSidewalk ? 0.28f
                       : label == kParking  ? 0.16f
                                            : scene.ground.terrain_reflectivity;
      } else {
        label = scene.prisms[hit.prism].label;
        reflectivity = scene.prisms[hit.prism].reflectivity;
      }
      const double signal = reflectivity * cos_incidence / ((range / 10.0) * (range / 10.0));
      const double keep = (1 - sensor.dropout) * (1 - std::exp(-signal / sensor.return_threshold));
      if (!rng.bernoulli(keep)) continue;
      const float measured = range + float(sensor.range_noise_m * rng.normal());
      const float horizontal = measured * cos_elev[beam];
      const float intensity =
          std::clamp(reflectivity * (0.4f + 0.6f * cos_incidence) + 0.03f * float(rng.normal()), 0.f, 1.f);
      frame.points.insert(frame.points.end(), {dx * horizontal, dy * horizontal, measured * sin_elev[beam], intensity});
      frame.labels.push_back(label);
      if (hit.prism >= 0 && scene.prisms[hit.prism].object >= 0) object_hits[scene.prisms[hit.prism].object] += 1;
    }
  }

  for (size_t i = 0; i < scene.objects.size(); ++i) {
    if (object_hits[i] < min_box_hits) continue;
    frame.boxes.insert(frame.boxes.end(), scene.objects[i].box, scene.objects[i].box + 7);
    frame.box_labels.push_back(scene.objects[i].box_class);
    if (visible_share)
      visible_share->push_back(rays_through[i] > 0 ? float(double(rays_seeing[i]) / double(rays_through[i])) : 0.f);
  }
  return frame;
}

std::vector<double> kitti_rig_calib() {
  return {// R0_rect
          9.999239e-01, 9.837760e-03, -7.445048e-03, -9.869795e-03, 9.999421e-01, -4.278459e-03, 7.402527e-03,
          4.351614e-03, 9.999631e-01,
          // Tr_velo_to_cam
          7.533745e-03, -9.999714e-01, -6.166020e-04, -4.069766e-03, 1.480249e-02, 7.280733e-04, -9.998902e-01,
          -7.631618e-02, 9.998621e-01, 7.523790e-03, 1.480755e-02, -2.717806e-01};
}

std::vector<double> kitti_rig_camera() {
  return {
      // P2
      7.215377e+02, 0, 6.095593e+02, 4.485728e+01, 0, 7.215377e+02, 1.728540e+02, 2.163791e-01, 0, 0, 1, 2.745884e-03,
      // image width, height
      kKittiImageWidth, kKittiImageHeight};
}

int occlusion_level(float visible_share) {
  return visible_share >= 0.8f ? 0 : visible_share >= 0.4f ? 1 : 2;
}

Frame synth_frame(uint64_t seed, int64_t frame_index, double skew, const SensorModel& sensor, bool camera) {
  constexpr uint64_t kNoiseStream = 0xD0153;
  constexpr int kMinBoxHits = 5;
  const Scene scene = make_scene(seed, frame_index, skew, float(sensor.mount_height_m));
  std::vector<float> visible;
  Frame frame = cast_frame(scene, sensor, stream_key(seed, uint64_t(frame_index), kNoiseStream), kMinBoxHits,
                           camera ? &visible : nullptr);
  if (camera) {
    frame.calib = kitti_rig_calib();
    frame.camera = kitti_rig_camera();
    const KittiCalib calib = calib_from_values(frame.calib);
    const KittiCamera cam = camera_from_values(frame.camera);
    for (int64_t b = 0; b < frame.num_boxes(); ++b) {
      std::array<float, 7> box;
      std::copy_n(&frame.boxes[size_t(7 * b)], 7, box.begin());
      KittiObject object = lidar_box_to_kitti(box, calib, kBoxClassNames[frame.box_labels[size_t(b)]]);
      const std::optional<ImageBox> image = project_to_image(object, cam);
      if (!image) continue;  // not in the camera's field of view: not annotated (as in KITTI)
      object.bbox = image->bbox;
      object.truncated = image->truncated;
      object.occluded = occlusion_level(visible[size_t(b)]);
      object.alpha = observation_angle(object);
      frame.objects.push_back(object);
    }
  }
  char id[64];
  std::snprintf(id, sizeof id, "synth/seed%llu/%06lld", static_cast<unsigned long long>(seed),
                static_cast<long long>(frame_index));
  frame.id = id;
  return frame;
}

}  // namespace lt::synth
