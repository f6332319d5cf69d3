#pragma once
// Detection metrics (DESIGN.md §5, bevdet), per class (Car, Pedestrian, Cyclist):
//   - AP in bird's-eye view at a rotated-IoU threshold (Car 0.7, Pedestrian 0.5, Cyclist 0.5, as KITTI's
//     BEV benchmark) with 40 recall points: the mean over r = 1/40 … 40/40 of the best precision at
//     recall ≥ r (KITTI's R40 interpolation; no difficulty levels or DontCare regions: every ground-truth
//     box in range counts);
//   - nuScenes-style centre-distance AP at 0.5, 1, 2, 4 m: precision interpolated linearly at recall
//     0, 0.01, …, 1 (0 beyond the highest recall), the points above recall 0.1 minus precision 0.1 clipped
//     at 0, averaged and divided by 0.9 (nuScenes' calc_ap).
// Matching is per frame, detections of a class in score order, each to the unmatched ground-truth box
// of its class with the highest IoU (the nearest centre); a match that misses the threshold is a false
// positive. Frames are evaluated where they are; the (score, hit) lists are gathered to rank 0.
#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "io/dataset.hpp"
#include "mpi/comm.hpp"
#include "src/common/json.hpp"
#include "src/models/bevdet.hpp"  // the box classes (kDetectionClasses)
#include "src/train/kitti_eval.hpp"

namespace lt {

constexpr std::array<double, 3> kBevIouThresholds = {0.7, 0.5, 0.5};         // Car, Pedestrian, Cyclist
constexpr std::array<double, 4> kCentreDistanceThresholds = {0.5, 1, 2, 4};  // m
constexpr int kMatchCriteria = 1 + int(kCentreDistanceThresholds.size());    // BEV IoU, then each distance

// Every detection of one class with its score and whether it hit, per criterion; and the ground-truth count.
struct ClassMatches {
  int64_t ground_truth = 0;
  std::vector<float> scores;
  std::vector<std::array<uint8_t, kMatchCriteria>> hits;
};

struct DetectionMetrics {
  std::array<double, kDetectionClasses> iou_thresholds = kBevIouThresholds;  // of ap_bev
  std::array<ClassMatches, kDetectionClasses> matches;
  std::array<double, kDetectionClasses> ap_bev{};  // NaN: no ground truth
  std::array<std::array<double, kCentreDistanceThresholds.size()>, kDetectionClasses> ap_distance{};
  std::array<double, kDetectionClasses> ap_distance_mean{};
  double mean_ap_bev = 0, mean_ap_distance = 0;  // over classes with ground truth
  int64_t frames = 0;
  // KITTI's protocol (kitti_eval.hpp), on datasets with cameras and their annotation (rank 0).
  std::optional<KittiMetrics> kitti;
};

// Adds one frame's matches: `truth` boxes (B, 7) with labels 1..3, against its detections (BEV IoU
// thresholds: metrics.iou_thresholds).
void match_frame(const std::vector<float>& truth, const std::vector<uint8_t>& truth_labels,
                 const std::vector<Detection>& detections, DetectionMetrics& metrics);
// AP with 40 recall points from (score, hit) pairs and the ground-truth count.
double average_precision_r40(const std::vector<float>& scores, const std::vector<uint8_t>& hits, int64_t ground_truth);
// nuScenes' AP (min recall 0.1, min precision 0.1, 101 recall points).
double average_precision_nuscenes(const std::vector<float>& scores, const std::vector<uint8_t>& hits,
                                  int64_t ground_truth);
// Fills the APs from the matches.
void finish_detection_metrics(DetectionMetrics& metrics);
// The matches of every rank, on rank 0 (concatenated in rank order), and the frame count.
void gather_detection_matches(DetectionMetrics& metrics, const Comm& comm);

// Runs `model` (one that predicts boxes) on every frame of `reader` (split over ranks) and computes the
// metrics on rank 0. Ground truth: the frame's boxes whose centre lies in the model's point range; where the
// dataset has cameras and camera objects, also KITTI's protocol on those objects against the detections as
// label_2 results (in the camera's field of view, io/raw_formats.hpp: kitti_result).
DetectionMetrics evaluate_boxes(Model& model, const DatasetReader& reader, const Comm& comm,
                                const std::array<double, kDetectionClasses>& iou_thresholds = kBevIouThresholds);
// The same with the detections of each frame from `detect(frame index, frame)` and the ground truth in
// `point_range` (x0, y0, z0, x1, y1, z1: the model's): frames split over ranks as above.
DetectionMetrics evaluate_detections(const DatasetReader& reader, const Comm& comm,
                                     const std::array<double, kDetectionClasses>& iou_thresholds,
                                     const std::array<double, 6>& point_range,
                                     const std::function<std::vector<Detection>(int64_t, const Frame&)>& detect);
// KITTI's protocol on label_2 results in `dir`/label_2/<name>.txt (a file per frame, named as
// kitti_frame_name names it: what infer --data, export and KITTI tools write) against the dataset's camera
// annotation; frames split over ranks, the metrics on rank 0.
KittiMetrics evaluate_kitti_results(const std::string& dir, const DatasetReader& reader, const Comm& comm);
std::string detection_table(const DetectionMetrics& metrics);
void write_metrics(JsonWriter& json, const DetectionMetrics& metrics);

}  // namespace lt
