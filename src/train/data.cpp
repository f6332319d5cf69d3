#include "src/train/data.hpp"

#include <cmath>

#include "src/common/rng.hpp"

namespace lt {
namespace {
constexpr uint64_t kAugmentStream = 0xA06E47;
}  // namespace

Augmentation draw_augmentation(uint64_t seed, int64_t epoch, int64_t frame_index, double max_rotation) {
  Rng rng(stream_key(seed, uint64_t(epoch), stream_key(kAugmentStream, uint64_t(frame_index))));
  Augmentation a;
  a.rotation_rad = float(rng.uniform(-max_rotation, max_rotation));
  a.scale = float(rng.uniform(0.95, 1.05));
  a.flip_y = rng.bernoulli(0.5);
  for (float& t : a.translation) t = float(0.2 * rng.normal());
  return a;
}

void augment_frame(const Augmentation& a, Frame& frame) {
  const float c = std::cos(a.rotation_rad), s = std::sin(a.rotation_rad);
  const auto transform = [&](float& x, float& y, float& z) {
    if (a.flip_y) y = -y;
    const float rx = c * x - s * y, ry = s * x + c * y;
    x = rx * a.scale + a.translation[0];
    y = ry * a.scale + a.translation[1];
    z = z * a.scale + a.translation[2];
  };
  for (int64_t i = 0; i < frame.num_points(); ++i) {
    float* p = &frame.points[4 * size_t(i)];
    transform(p[0], p[1], p[2]);
  }
  for (int64_t b = 0; b < frame.num_boxes(); ++b) {
    float* box = &frame.boxes[7 * size_t(b)];
    transform(box[0], box[1], box[2]);
    for (int k = 3; k < 6; ++k) box[k] *= a.scale;
    box[6] = (a.flip_y ? -box[6] : box[6]) + a.rotation_rad;
  }
}

PointBatch make_batch(const std::vector<Frame>& frames) {
  PointBatch batch;
  batch.frames = int(frames.size());
  for (size_t f = 0; f < frames.size(); ++f) {
    batch.points.insert(batch.points.end(), frames[f].points.begin(), frames[f].points.end());
    batch.labels.insert(batch.labels.end(), frames[f].labels.begin(), frames[f].labels.end());
    batch.frame_of.insert(batch.frame_of.end(), size_t(frames[f].num_points()), int32_t(f));
    batch.boxes.insert(batch.boxes.end(), frames[f].boxes.begin(), frames[f].boxes.end());
    batch.box_labels.insert(batch.box_labels.end(), frames[f].box_labels.begin(), frames[f].box_labels.end());
    batch.box_frame.insert(batch.box_frame.end(), size_t(frames[f].num_boxes()), int32_t(f));
  }
  return batch;
}

}  // namespace lt
