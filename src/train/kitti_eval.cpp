#include "src/train/kitti_eval.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "kernels/common/box_iou.hpp"

namespace lt {

namespace {

constexpr double kMinHeight[kKittiDifficulties] = {40, 25, 25};
constexpr int kMaxOcclusion[kKittiDifficulties] = {0, 1, 2};
constexpr double kMaxTruncation[kKittiDifficulties] = {0.15, 0.3, 0.5};
constexpr int kSamplePoints = 41;
constexpr double kNoDetection = -10000000;

// What counts in one frame for one class and difficulty (the devkit's clean_data): per object 0 (counts),
// 1 (ignored: a neighbour class, or outside the difficulty) or -1 (another class); the DontCare boxes.
struct Cleaned {
  std::vector<int> ignored_gt, ignored_dt;
  std::vector<std::array<double, 4>> dontcare;
  int64_t valid = 0;
};

Cleaned clean(const KittiEvalFrame& frame, int cls, int difficulty) {
  const std::string name = kKittiClassNames[size_t(cls)];
  Cleaned c;
  for (const KittiObject& gt : frame.truth) {
    const double height = gt.bbox[3] - gt.bbox[1];
    int valid_class = -1;
    if (gt.type == name)
      valid_class = 1;
    else if ((name == "Pedestrian" && gt.type == "Person_sitting") || (name == "Car" && gt.type == "Van"))
      valid_class = 0;
    const bool ignore = gt.occluded > kMaxOcclusion[difficulty] || gt.truncated > kMaxTruncation[difficulty] ||
                        height <= kMinHeight[difficulty];
    if (valid_class == 1 && !ignore) {
      c.ignored_gt.push_back(0);
      ++c.valid;
    } else if (valid_class == 0 || (ignore && valid_class == 1)) {
      c.ignored_gt.push_back(1);
    } else {
      c.ignored_gt.push_back(-1);
    }
    if (gt.type == "DontCare") c.dontcare.push_back(gt.bbox);
  }
  for (const KittiObject& dt : frame.detections) {
    const double height = std::abs(dt.bbox[3] - dt.bbox[1]);
    if (height < kMinHeight[difficulty])
      c.ignored_dt.push_back(1);
    else
      c.ignored_dt.push_back(dt.type == name ? 0 : -1);
  }
  return c;
}

// Intersection of two image boxes over the union (criterion −1) or over the first one's area (0).
double image_overlap(const std::array<double, 4>& a, const std::array<double, 4>& b, bool over_first) {
  const double iw = std::min(a[2], b[2]) - std::max(a[0], b[0]);
  if (!(iw > 0)) return 0;
  const double ih = std::min(a[3], b[3]) - std::max(a[1], b[1]);
  if (!(ih > 0)) return 0;
  const double area_a = (a[2] - a[0]) * (a[3] - a[1]), area_b = (b[2] - b[0]) * (b[3] - b[1]);
  const double ua = over_first ? area_a : area_a + area_b - iw * ih;
  return iw * ih / ua;
}

// The footprint on the ground plane (camera x, z) as box_iou.hpp's BEV box: the length axis of a
// camera-frame object points along (cos ry, −sin ry) in (x, z).
std::array<float, 7> footprint(const KittiObject& o) {
  return {float(o.x), float(o.z), 0.f, float(o.length), float(o.width), 0.f, float(-o.rotation_y)};
}

// The overlaps of one frame, detection-major (overlaps[j * G + i]: detection j, ground truth i), per metric.
struct FrameOverlaps {
  std::vector<double> metric[3];
};

struct Statistics {
  int64_t tp = 0, fp = 0, fn = 0;
  double similarity = 0;  // −1: no positives
  std::vector<double> thresholds;
};

// The devkit's compute_statistics_jit, line for line.
Statistics compute_statistics(const std::vector<double>& overlaps, const KittiEvalFrame& frame, const Cleaned& c,
                              int metric, double min_overlap, double thresh, bool compute_fp, bool compute_aos) {
  const size_t gt_size = frame.truth.size(), det_size = frame.detections.size();
  std::vector<char> assigned(det_size, 0), below_threshold(det_size, 0);
  if (compute_fp)
    for (size_t j = 0; j < det_size; ++j) below_threshold[j] = frame.detections[j].score < thresh;
  Statistics s;
  std::vector<double> delta;
  for (size_t i = 0; i < gt_size; ++i) {
    if (c.ignored_gt[i] == -1) continue;
    int det_idx = -1;
    double valid_detection = kNoDetection, max_overlap = 0;
    bool assigned_ignored_det = false;
    for (size_t j = 0; j < det_size; ++j) {
      if (c.ignored_dt[j] == -1 || assigned[j] || below_threshold[j]) continue;
      const double overlap = overlaps[j * gt_size + i];
      const double score = frame.detections[j].score;
      if (!compute_fp && overlap > min_overlap && score > valid_detection) {
        det_idx = int(j);
        valid_detection = score;
      } else if (compute_fp && overlap > min_overlap && (overlap > max_overlap || assigned_ignored_det) &&
                 c.ignored_dt[j] == 0) {
        max_overlap = overlap;
        det_idx = int(j);
        valid_detection = 1;
        assigned_ignored_det = false;
      } else if (compute_fp && overlap > min_overlap && valid_detection == kNoDetection && c.ignored_dt[j] == 1) {
        det_idx = int(j);
        valid_detection = 1;
        assigned_ignored_det = true;
      }
    }
    if (valid_detection == kNoDetection && c.ignored_gt[i] == 0) {
      ++s.fn;
    } else if (valid_detection != kNoDetection && (c.ignored_gt[i] == 1 || c.ignored_dt[size_t(det_idx)] == 1)) {
      assigned[size_t(det_idx)] = 1;
    } else if (valid_detection != kNoDetection) {
      ++s.tp;
      s.thresholds.push_back(frame.detections[size_t(det_idx)].score);
      if (compute_aos) delta.push_back(frame.truth[i].alpha - frame.detections[size_t(det_idx)].alpha);
      assigned[size_t(det_idx)] = 1;
    }
  }
  if (compute_fp) {
    for (size_t j = 0; j < det_size; ++j)
      if (!(assigned[j] || c.ignored_dt[j] == -1 || c.ignored_dt[j] == 1 || below_threshold[j])) ++s.fp;
    int64_t in_dontcare = 0;
    if (metric == 0) {
      for (const auto& dc : c.dontcare)
        for (size_t j = 0; j < det_size; ++j) {
          if (assigned[j] || c.ignored_dt[j] == -1 || c.ignored_dt[j] == 1 || below_threshold[j]) continue;
          if (image_overlap(frame.detections[j].bbox, dc, true) > min_overlap) {
            assigned[j] = 1;
            ++in_dontcare;
          }
        }
    }
    s.fp -= in_dontcare;
    if (compute_aos) {
      double sum = 0;
      for (double d : delta) sum += (1.0 + std::cos(d)) / 2.0;
      s.similarity = s.tp > 0 || s.fp > 0 ? sum : -1;
    }
  }
  return s;
}

// The devkit's get_thresholds: at most 41 scores, one per 1/40 of recall.
std::vector<double> sample_thresholds(std::vector<double> scores, int64_t num_gt) {
  std::sort(scores.begin(), scores.end(), std::greater<double>());
  std::vector<double> thresholds;
  double current_recall = 0;
  for (size_t i = 0; i < scores.size(); ++i) {
    const double l_recall = double(i + 1) / double(num_gt);
    const double r_recall = i + 1 < scores.size() ? double(i + 2) / double(num_gt) : l_recall;
    if (r_recall - current_recall < current_recall - l_recall && i + 1 < scores.size()) continue;
    thresholds.push_back(scores[i]);
    current_recall += 1.0 / (kSamplePoints - 1.0);
  }
  return thresholds;
}

}  // namespace

double kitti_image_iou(const KittiObject& a, const KittiObject& b) {
  return image_overlap(a.bbox, b.bbox, false);
}

double kitti_bev_iou(const KittiObject& a, const KittiObject& b) {
  const auto fa = footprint(a), fb = footprint(b);
  const double inter = bev_intersection_area(fa.data(), fb.data());
  const double ua = double(fa[3]) * fa[4] + double(fb[3]) * fb[4] - inter;
  return ua > 0 ? inter / ua : 0.0;
}

double kitti_3d_iou(const KittiObject& a, const KittiObject& b) {
  // y points down and is the bottom: the box spans [y − h, y].
  const double iw = std::min(a.y, b.y) - std::max(a.y - a.height, b.y - b.height);
  if (!(iw > 0)) return 0;
  const auto fa = footprint(a), fb = footprint(b);
  const double inc = iw * bev_intersection_area(fa.data(), fb.data());
  const double ua = a.length * a.height * a.width + b.length * b.height * b.width - inc;
  return ua > 0 ? inc / ua : 0.0;
}

KittiMetrics kitti_evaluate(const std::vector<KittiEvalFrame>& frames) {
  KittiMetrics m;
  m.frames = int64_t(frames.size());
  for (const KittiEvalFrame& f : frames) {
    if (!f.detections.empty() && f.detections.front().alpha != -10) m.aos = true;
    for (const KittiObject& d : f.detections)
      for (int c = 0; c < kKittiClasses; ++c) m.detections[c] += d.type == kKittiClassNames[size_t(c)];
  }
  std::vector<FrameOverlaps> overlaps(frames.size());
  for (size_t f = 0; f < frames.size(); ++f) {
    const auto& truth = frames[f].truth;
    const auto& dets = frames[f].detections;
    for (auto& metric : overlaps[f].metric) metric.assign(truth.size() * dets.size(), 0.0);
    for (size_t j = 0; j < dets.size(); ++j)
      for (size_t i = 0; i < truth.size(); ++i) {
        if (truth[i].type == "DontCare") continue;  // no 3D box; its overlap is never looked at (ignored_gt −1)
        overlaps[f].metric[0][j * truth.size() + i] = kitti_image_iou(dets[j], truth[i]);
        overlaps[f].metric[1][j * truth.size() + i] = kitti_bev_iou(dets[j], truth[i]);
        overlaps[f].metric[2][j * truth.size() + i] = kitti_3d_iou(dets[j], truth[i]);
      }
  }
  for (int c = 0; c < kKittiClasses; ++c)
    for (int d = 0; d < kKittiDifficulties; ++d) {
      std::vector<Cleaned> cleaned;
      int64_t num_valid = 0;
      for (const KittiEvalFrame& f : frames) {
        cleaned.push_back(clean(f, c, d));
        num_valid += cleaned.back().valid;
      }
      m.objects[c][d] = num_valid;
      for (int metric = 0; metric < 3; ++metric) {
        const bool aos = metric == 0 && m.aos;
        for (int k = 0; k < kKittiOverlapSets; ++k) {
          const double min_overlap = kKittiMinOverlaps[k][metric][c];
          std::vector<double> scores;
          for (size_t f = 0; f < frames.size(); ++f) {
            const Statistics s = compute_statistics(overlaps[f].metric[metric], frames[f], cleaned[f], metric,
                                                    min_overlap, 0.0, false, false);
            scores.insert(scores.end(), s.thresholds.begin(), s.thresholds.end());
          }
          const std::vector<double> thresholds = sample_thresholds(scores, num_valid);
          double precision[kSamplePoints] = {}, orientation[kSamplePoints] = {};
          for (size_t t = 0; t < thresholds.size(); ++t) {
            double tp = 0, fp = 0, similarity = 0;
            for (size_t f = 0; f < frames.size(); ++f) {
              const Statistics s = compute_statistics(overlaps[f].metric[metric], frames[f], cleaned[f], metric,
                                                      min_overlap, thresholds[t], true, aos);
              tp += double(s.tp), fp += double(s.fp);
              if (s.similarity != -1) similarity += s.similarity;
            }
            precision[t] = tp + fp > 0 ? tp / (tp + fp) : 0.0;
            orientation[t] = tp + fp > 0 ? similarity / (tp + fp) : 0.0;
          }
          for (int t = kSamplePoints - 2; t >= 0; --t) {  // the best precision at this recall or more
            precision[t] = std::max(precision[t], precision[t + 1]);
            orientation[t] = std::max(orientation[t], orientation[t + 1]);
          }
          const auto r11 = [](const double* p) {
            double sum = 0;
            for (int t = 0; t < kSamplePoints; t += 4) sum += p[t];
            return sum / 11 * 100;
          };
          const auto r40 = [](const double* p) {
            double sum = 0;
            for (int t = 1; t < kSamplePoints; ++t) sum += p[t];
            return sum / 40 * 100;
          };
          m.ap_r11[c][k][metric][d] = r11(precision);
          m.ap_r40[c][k][metric][d] = r40(precision);
          if (aos) {
            m.ap_r11[c][k][3][d] = r11(orientation);
            m.ap_r40[c][k][3][d] = r40(orientation);
          }
        }
      }
    }
  return m;
}

std::string kitti_table(const KittiMetrics& m) {
  std::string out;
  char line[160];
  for (int c = 0; c < kKittiClasses; ++c)
    for (int k = 0; k < kKittiOverlapSets; ++k)
      for (int r = 0; r < 2; ++r) {
        const auto& ap = r == 0 ? m.ap_r11[c][k] : m.ap_r40[c][k];
        std::snprintf(line, sizeof line, "%s AP%s@%.2f, %.2f, %.2f:\n", kKittiClassNames[size_t(c)], r ? "_R40" : "",
                      kKittiMinOverlaps[k][0][c], kKittiMinOverlaps[k][1][c], kKittiMinOverlaps[k][2][c]);
        out += line;
        for (int metric = 0; metric < kKittiMetrics; ++metric) {
          if (metric == 3 && !m.aos) continue;
          std::snprintf(line, sizeof line, "%-4s AP:%.4f, %.4f, %.4f\n", kKittiMetricNames[size_t(metric)],
                        ap[metric][0], ap[metric][1], ap[metric][2]);
          out += line;
        }
      }
  std::snprintf(line, sizeof line,
                "objects (easy, moderate, hard): Car %lld/%lld/%lld, Pedestrian %lld/%lld/%lld, "
                "Cyclist %lld/%lld/%lld; %lld frames\n",
                static_cast<long long>(m.objects[0][0]), static_cast<long long>(m.objects[0][1]),
                static_cast<long long>(m.objects[0][2]), static_cast<long long>(m.objects[1][0]),
                static_cast<long long>(m.objects[1][1]), static_cast<long long>(m.objects[1][2]),
                static_cast<long long>(m.objects[2][0]), static_cast<long long>(m.objects[2][1]),
                static_cast<long long>(m.objects[2][2]), static_cast<long long>(m.frames));
  out += line;
  std::snprintf(line, sizeof line, "3D AP (R40) Car Moderate @0.70: %.4f\n", m.ap_r40[0][0][2][1]);
  return out + line;
}

void write_kitti_metrics(JsonWriter& json, const KittiMetrics& m) {
  json.key("kitti").begin_object().key("frames").value(m.frames).key("aos").value(m.aos);
  json.key("car_3d_moderate_r40").value(m.ap_r40[0][0][2][1]);
  json.key("classes").begin_object();
  for (int c = 0; c < kKittiClasses; ++c) {
    json.key(kKittiClassNames[size_t(c)]).begin_object();
    json.key("detections").value(m.detections[c]).key("objects").begin_object();
    for (int d = 0; d < kKittiDifficulties; ++d) json.key(kKittiDifficultyNames[size_t(d)]).value(m.objects[c][d]);
    json.end_object();
    for (int k = 0; k < kKittiOverlapSets; ++k) {
      json.key(k == 0 ? "strict" : "loose").begin_object();
      json.key("iou").begin_object();
      for (int metric = 0; metric < 3; ++metric)
        json.key(kKittiMetricNames[size_t(metric)]).value(kKittiMinOverlaps[k][metric][c]);
      json.end_object();
      for (int r = 0; r < 2; ++r) {
        json.key(r == 0 ? "r11" : "r40").begin_object();
        const auto& ap = r == 0 ? m.ap_r11[c][k] : m.ap_r40[c][k];
        for (int metric = 0; metric < kKittiMetrics; ++metric) {
          if (metric == 3 && !m.aos) continue;
          json.key(kKittiMetricNames[size_t(metric)]).begin_object();
          for (int d = 0; d < kKittiDifficulties; ++d) json.key(kKittiDifficultyNames[size_t(d)]).value(ap[metric][d]);
          json.end_object();
        }
        json.end_object();
      }
      json.end_object();
    }
    json.end_object();
  }
  json.end_object().end_object();
}

}  // namespace lt
