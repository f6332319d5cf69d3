#pragma once
// From dataset frames to model batches: the epoch order, augmentation and batching (DESIGN.md §5, §7).
// Every draw comes from the counter-based RNG, keyed so that a frame is ordered and augmented the same
// whichever rank or thread handles it.
#include <cstdint>
#include <vector>

#include "io/dataset.hpp"
#include "mpi/balance.hpp"  // epoch_permutation: the epoch order is the sampler's
#include "src/models/model.hpp"

namespace lt {

constexpr double kPiRad = 3.14159265358979323846;

// A global rotation about z, scaling, flip across the x axis (y → -y) and translation.
struct Augmentation {
  float rotation_rad = 0, scale = 1;
  bool flip_y = false;
  float translation[3] = {0, 0, 0};
};
// Drawn from (seed, epoch, frame index): rotation U(−max_rotation, max_rotation) (π: any heading;
// detectors use π/4 as OpenPCDet's KITTI configs), scale U(0.95, 1.05), flip p = 0.5, translation
// N(0, 0.2 m) per axis.
Augmentation draw_augmentation(uint64_t seed, int64_t epoch, int64_t frame_index, double max_rotation = kPiRad);
// Applies it to the frame's points (and boxes: centre, sizes, heading).
void augment_frame(const Augmentation& augmentation, Frame& frame);

// Concatenates frames into a batch (points, frame of each point, labels, boxes).
PointBatch make_batch(const std::vector<Frame>& frames);

}  // namespace lt
