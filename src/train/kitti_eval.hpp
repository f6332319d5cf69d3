#pragma once
// KITTI's object detection protocol (its devkit's evaluate_object, by the rules of the Python port that
// OpenPCDet and mmdetection3d ship as kitti_object_eval_python), on the camera annotation a dataset keeps
// (io/dataset.hpp: /objects) and detections as label_2 results (io/raw_formats.hpp: kitti_result):
//
//   - classes Car, Pedestrian, Cyclist; Van counts as Car's neighbour and Person_sitting as Pedestrian's:
//     a detection matched to one is neither a true nor a false positive;
//   - difficulties by the ground truth's 2D box height (> 40, 25, 25 px), occlusion (≤ 0, 1, 2) and
//     truncation (≤ 0.15, 0.3, 0.5): Easy, Moderate, Hard; an object outside a difficulty is ignored in it;
//     a detection lower than its minimum height is ignored;
//   - metrics: 2D bbox IoU, BEV rotated IoU, 3D IoU, and AOS (orientation similarity with the bbox matches);
//     IoU thresholds Car 0.7 / Pedestrian, Cyclist 0.5 (the "strict" set) and bbox 0.7/0.5, BEV and 3D
//     0.5/0.25 (the "loose" set); an overlap must exceed the threshold;
//   - DontCare regions: in the 2D bbox metric, an unmatched detection covered more than the threshold by
//     one (intersection over the detection's area) is not a false positive (the Python port applies
//     them to bbox only; the C++ devkit to all three);
//   - recall sampling: the scores of the true positives are thinned to at most 41 thresholds (get_thresholds),
//     precision made monotone, AP_R11 = mean of precision at 11 of them (every 4th), AP_R40 = mean of the 40
//     after the first. (So a class with n < 41 objects reaches at most (n − 1)/40 in R40, as in the devkit.)
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "io/dataset.hpp"
#include "src/common/json.hpp"

namespace lt {

// One frame: its camera annotation (every type, DontCare included) and its detections as label_2 results
// (type, 2D box, alpha, 3D box in the camera frame, score).
struct KittiEvalFrame {
  std::vector<KittiObject> truth, detections;
};

constexpr int kKittiClasses = 3;       // Car, Pedestrian, Cyclist
constexpr int kKittiDifficulties = 3;  // Easy, Moderate, Hard
constexpr int kKittiOverlapSets = 2;   // strict, loose
constexpr int kKittiMetrics = 4;       // bbox, bev, 3d, aos
constexpr std::array<const char*, kKittiClasses> kKittiClassNames = {"Car", "Pedestrian", "Cyclist"};
constexpr std::array<const char*, kKittiDifficulties> kKittiDifficultyNames = {"easy", "moderate", "hard"};
constexpr std::array<const char*, kKittiMetrics> kKittiMetricNames = {"bbox", "bev", "3d", "aos"};
// [overlap set][metric bbox, bev, 3d][class]
constexpr double kKittiMinOverlaps[kKittiOverlapSets][3][kKittiClasses] = {
    {{0.7, 0.5, 0.5}, {0.7, 0.5, 0.5}, {0.7, 0.5, 0.5}}, {{0.7, 0.5, 0.5}, {0.5, 0.25, 0.25}, {0.5, 0.25, 0.25}}};

struct KittiMetrics {
  // AP in percent: [class][overlap set][metric][difficulty]
  double ap_r11[kKittiClasses][kKittiOverlapSets][kKittiMetrics][kKittiDifficulties] = {};
  double ap_r40[kKittiClasses][kKittiOverlapSets][kKittiMetrics][kKittiDifficulties] = {};
  int64_t objects[kKittiClasses][kKittiDifficulties] = {};  // ground truth that counts (not ignored)
  int64_t detections[kKittiClasses] = {};
  bool aos = false;  // the detections carry alpha (not −10): AOS is computed
  int64_t frames = 0;
};

KittiMetrics kitti_evaluate(const std::vector<KittiEvalFrame>& frames);

// Image IoU (no +1 on pixel sizes, as the Python port), BEV IoU and 3D IoU of two camera-frame objects.
double kitti_image_iou(const KittiObject& a, const KittiObject& b);
double kitti_bev_iou(const KittiObject& a, const KittiObject& b);
double kitti_3d_iou(const KittiObject& a, const KittiObject& b);

// The table OpenPCDet prints (per class and overlap set: bbox/bev/3d/aos AP at Easy, Moderate, Hard, R11 then
// R40) and every number in `json` (under "kitti").
std::string kitti_table(const KittiMetrics& metrics);
void write_kitti_metrics(JsonWriter& json, const KittiMetrics& metrics);

}  // namespace lt
