#include "src/train/detection_eval.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <numeric>

#include "io/label_map.hpp"
#include "io/raw_formats.hpp"
#include "kernels/common/box_iou.hpp"
#include "src/common/error.hpp"
#include "src/train/data.hpp"

namespace lt {
namespace {

const double kNaN = std::numeric_limits<double>::quiet_NaN();

// Cumulative precision and recall of (score, hit) pairs in descending score order (stable).
void precision_recall(const std::vector<float>& scores, const std::vector<uint8_t>& hits, int64_t ground_truth,
                      std::vector<double>& precision, std::vector<double>& recall) {
  std::vector<size_t> order(scores.size());
  std::iota(order.begin(), order.end(), size_t(0));
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return scores[a] > scores[b]; });
  double tp = 0, fp = 0;
  for (size_t i : order) {
    (hits[i] ? tp : fp) += 1;
    precision.push_back(tp / (tp + fp));
    recall.push_back(tp / double(ground_truth));
  }
}

void append_bytes(std::string& out, const void* data, size_t size) {
  out.append(static_cast<const char*>(data), size);
}

}  // namespace

void match_frame(const std::vector<float>& truth, const std::vector<uint8_t>& truth_labels,
                 const std::vector<Detection>& detections, DetectionMetrics& metrics) {
  for (int c = 0; c < kDetectionClasses; ++c) {
    std::vector<const float*> gt;
    for (size_t k = 0; k < truth_labels.size(); ++k)
      if (truth_labels[k] == c + 1) gt.push_back(&truth[7 * k]);
    std::vector<const Detection*> dets;
    for (const Detection& d : detections)
      if (d.label == c + 1) dets.push_back(&d);
    std::stable_sort(dets.begin(), dets.end(),
                     [](const Detection* a, const Detection* b) { return a->score > b->score; });
    ClassMatches& m = metrics.matches[size_t(c)];
    m.ground_truth += int64_t(gt.size());
    std::vector<std::vector<uint8_t>> taken(kMatchCriteria, std::vector<uint8_t>(gt.size(), 0));
    for (const Detection* d : dets) {
      std::array<uint8_t, kMatchCriteria> hit{};
      // BEV IoU: the free ground-truth box it overlaps most.
      int best = -1;
      double best_iou = 0;
      for (size_t g = 0; g < gt.size(); ++g) {
        if (taken[0][g]) continue;
        const double iou = bev_iou(d->box.data(), gt[g]);
        if (iou > best_iou) best_iou = iou, best = int(g);
      }
      if (best >= 0 && best_iou >= metrics.iou_thresholds[size_t(c)]) hit[0] = 1, taken[0][size_t(best)] = 1;
      // Centre distance, per threshold: the nearest free ground-truth centre.
      for (size_t t = 0; t < kCentreDistanceThresholds.size(); ++t) {
        int nearest = -1;
        double nearest_d = std::numeric_limits<double>::infinity();
        for (size_t g = 0; g < gt.size(); ++g) {
          if (taken[t + 1][g]) continue;
          const double dist = std::hypot(double(d->box[0]) - gt[g][0], double(d->box[1]) - gt[g][1]);
          if (dist < nearest_d) nearest_d = dist, nearest = int(g);
        }
        if (nearest >= 0 && nearest_d <= kCentreDistanceThresholds[t])
          hit[t + 1] = 1, taken[t + 1][size_t(nearest)] = 1;
      }
      m.scores.push_back(d->score);
      m.hits.push_back(hit);
    }
  }
  metrics.frames += 1;
}

double average_precision_r40(const std::vector<float>& scores, const std::vector<uint8_t>& hits, int64_t ground_truth) {
  if (ground_truth == 0) return kNaN;
  std::vector<double> precision, recall;
  precision_recall(scores, hits, ground_truth, precision, recall);
  double sum = 0;
  for (int k = 1; k <= 40; ++k) {
    const double r = k / 40.0;
    double best = 0;
    for (size_t i = 0; i < recall.size(); ++i)
      if (recall[i] >= r - 1e-12) best = std::max(best, precision[i]);
    sum += best;
  }
  return sum / 40;
}

double average_precision_nuscenes(const std::vector<float>& scores, const std::vector<uint8_t>& hits,
                                  int64_t ground_truth) {
  if (ground_truth == 0) return kNaN;
  std::vector<double> precision, recall;
  precision_recall(scores, hits, ground_truth, precision, recall);
  if (recall.empty()) return 0.0;
  // np.interp(linspace(0, 1, 101), recall, precision, right=0)
  const auto interp = [&](double x) {
    if (x > recall.back()) return 0.0;
    if (x <= recall.front()) return precision.front();
    const size_t i = size_t(std::upper_bound(recall.begin(), recall.end(), x) - recall.begin()) - 1;
    if (i + 1 >= recall.size()) return precision.back();
    const double t = (x - recall[i]) / (recall[i + 1] - recall[i]);
    return precision[i] + t * (precision[i + 1] - precision[i]);
  };
  double sum = 0;
  int count = 0;
  for (int k = 11; k <= 100; ++k, ++count) sum += std::max(0.0, interp(k / 100.0) - 0.1);
  return sum / count / 0.9;
}

void finish_detection_metrics(DetectionMetrics& m) {
  double sum_bev = 0, sum_distance = 0;
  int present = 0;
  for (int c = 0; c < kDetectionClasses; ++c) {
    const ClassMatches& cm = m.matches[size_t(c)];
    std::vector<uint8_t> hits(cm.hits.size());
    for (size_t i = 0; i < hits.size(); ++i) hits[i] = cm.hits[i][0];
    m.ap_bev[size_t(c)] = average_precision_r40(cm.scores, hits, cm.ground_truth);
    double mean = 0;
    for (size_t t = 0; t < kCentreDistanceThresholds.size(); ++t) {
      for (size_t i = 0; i < hits.size(); ++i) hits[i] = cm.hits[i][t + 1];
      m.ap_distance[size_t(c)][t] = average_precision_nuscenes(cm.scores, hits, cm.ground_truth);
      mean += m.ap_distance[size_t(c)][t] / double(kCentreDistanceThresholds.size());
    }
    m.ap_distance_mean[size_t(c)] = mean;
    if (cm.ground_truth == 0) continue;
    sum_bev += m.ap_bev[size_t(c)];
    sum_distance += mean;
    present += 1;
  }
  m.mean_ap_bev = present > 0 ? sum_bev / present : 0.0;
  m.mean_ap_distance = present > 0 ? sum_distance / present : 0.0;
}

void gather_detection_matches(DetectionMetrics& m, const Comm& comm) {
  std::string mine;
  append_bytes(mine, &m.frames, sizeof m.frames);
  for (const ClassMatches& cm : m.matches) {
    const int64_t n = int64_t(cm.scores.size());
    append_bytes(mine, &cm.ground_truth, sizeof cm.ground_truth);
    append_bytes(mine, &n, sizeof n);
    append_bytes(mine, cm.scores.data(), sizeof(float) * size_t(n));
    append_bytes(mine, cm.hits.data(), sizeof(cm.hits[0]) * size_t(n));
  }
  const std::vector<std::string> all = comm.gather_text(mine, 0);
  if (!comm.is_root()) return;
  DetectionMetrics merged;
  merged.iou_thresholds = m.iou_thresholds;
  for (const std::string& part : all) {
    size_t at = 0;
    const auto take = [&](void* out, size_t size) {
      require(at + size <= part.size(), "evaluation: a rank's detection matches are truncated");
      std::memcpy(out, part.data() + at, size);
      at += size;
    };
    int64_t frames = 0;
    take(&frames, sizeof frames);
    merged.frames += frames;
    for (ClassMatches& cm : merged.matches) {
      int64_t ground_truth = 0, n = 0;
      take(&ground_truth, sizeof ground_truth);
      take(&n, sizeof n);
      cm.ground_truth += ground_truth;
      const size_t old = cm.scores.size();
      cm.scores.resize(old + size_t(n));
      cm.hits.resize(old + size_t(n));
      take(cm.scores.data() + old, sizeof(float) * size_t(n));
      take(cm.hits.data() + old, sizeof(cm.hits[0]) * size_t(n));
    }
  }
  m = std::move(merged);
}

DetectionMetrics evaluate_boxes(Model& model, const DatasetReader& reader, const Comm& comm,
                                const std::array<double, kDetectionClasses>& iou_thresholds) {
  return evaluate_detections(reader, comm, iou_thresholds, model.point_range(), [&](int64_t, const Frame& frame) {
    return model.predict(make_batch({frame})).front().detections;
  });
}

namespace {

// The frames' camera objects and label_2 results, as bytes for the gather to rank 0: per object its type
// index, then kObjectFields doubles.
constexpr size_t kObjectFields = 15;
constexpr size_t kObjectRecordBytes = 1 + sizeof(double) * kObjectFields;
void append_objects(std::string& out, const std::vector<KittiObject>& objects) {
  const int64_t n = int64_t(objects.size());
  append_bytes(out, &n, sizeof n);
  for (const KittiObject& o : objects) {
    const uint8_t type = uint8_t(kitti_type_index(o.type));
    const double values[kObjectFields] = {o.truncated, double(o.occluded), o.alpha, o.bbox[0], o.bbox[1], o.bbox[2],
                                          o.bbox[3],   o.height,           o.width, o.length,  o.x,       o.y,
                                          o.z,         o.rotation_y,       o.score};
    append_bytes(out, &type, 1);
    append_bytes(out, values, sizeof values);
  }
}

// Rank r holds frames r, r + size, r + 2·size, …: rank 0 puts them back in dataset order (the protocol's
// sums then run in one order whatever the rank count, so its numbers are bit-identical).
std::vector<KittiEvalFrame> gather_kitti_frames(const std::vector<KittiEvalFrame>& mine, const Comm& comm) {
  std::string bytes;
  for (const KittiEvalFrame& f : mine) {
    append_objects(bytes, f.truth);
    append_objects(bytes, f.detections);
  }
  const std::vector<std::string> all = comm.gather_text(bytes, 0);
  std::vector<std::vector<KittiEvalFrame>> per_rank(all.size());
  for (size_t r = 0; r < all.size(); ++r) {
    const std::string& part = all[r];
    std::vector<KittiEvalFrame>& frames = per_rank[r];
    size_t at = 0;
    const auto take = [&](void* out, size_t size) {
      require(at + size <= part.size(), "evaluation: a rank's KITTI objects are truncated");
      std::memcpy(out, part.data() + at, size);
      at += size;
    };
    const auto take_objects = [&](std::vector<KittiObject>& objects) {
      int64_t n = 0;
      take(&n, sizeof n);
      require(n >= 0 && uint64_t(n) <= (part.size() - at) / kObjectRecordBytes,
              "evaluation: a rank's KITTI objects are damaged");
      objects.resize(size_t(n));
      for (KittiObject& o : objects) {
        uint8_t type = 0;
        double v[kObjectFields];
        take(&type, 1);
        take(v, sizeof v);
        require(type < kKittiTypes.size(), "evaluation: a rank's KITTI objects are damaged");
        o.type = kKittiTypes[type];
        o.truncated = v[0], o.occluded = int(v[1]), o.alpha = v[2], o.bbox = {v[3], v[4], v[5], v[6]};
        o.height = v[7], o.width = v[8], o.length = v[9], o.x = v[10], o.y = v[11], o.z = v[12];
        o.rotation_y = v[13], o.score = v[14];
      }
    };
    while (at < part.size()) {
      KittiEvalFrame f;
      take_objects(f.truth);
      take_objects(f.detections);
      frames.push_back(std::move(f));
    }
  }
  std::vector<KittiEvalFrame> frames;
  if (per_rank.empty()) return frames;  // not rank 0
  for (size_t i = 0;; ++i)
    for (auto& rank_frames : per_rank) {
      if (i >= rank_frames.size()) return frames;  // ranks hold ⌈n/size⌉ or ⌊n/size⌋, the first ones more
      frames.push_back(std::move(rank_frames[i]));
    }
}

// The frames of every rank to rank 0, where the protocol runs (its thresholds come from all frames).
KittiMetrics kitti_metrics_of(const std::vector<KittiEvalFrame>& mine, const Comm& comm) {
  const std::vector<KittiEvalFrame> all = gather_kitti_frames(mine, comm);
  return comm.is_root() ? kitti_evaluate(all) : KittiMetrics{};
}

bool has_kitti_annotation(const DatasetKind& kind) {
  return kind.has_calib && kind.has_camera && kind.has_objects;
}

}  // namespace

KittiMetrics evaluate_kitti_results(const std::string& dir, const DatasetReader& reader, const Comm& comm) {
  require(has_kitti_annotation(reader.kind()),
          reader.shard_paths().front() +
              ": the dataset has no camera annotation (KITTI label_2 objects with P2) to score label_2 results "
              "against");
  std::vector<KittiEvalFrame> mine;
  run_agreed(comm, [&] {
    for (int64_t f = comm.rank(); f < reader.num_frames(); f += comm.size()) {
      const Frame frame = reader.read(f);
      const std::string path =
          (std::filesystem::path(dir) / "label_2" / (kitti_frame_name(frame.id, f) + ".txt")).string();
      require(std::filesystem::is_regular_file(path),
              path + ": missing (the results of frame " + frame.id + "; KITTI wants a file per frame, empty if none)");
      KittiEvalFrame& k = mine.emplace_back();
      k.truth = frame.objects;
      k.detections = read_kitti_objects(path);
    }
  });
  KittiMetrics m = kitti_metrics_of(mine, comm);
  m.frames = comm.is_root() ? reader.num_frames() : 0;
  return m;
}

DetectionMetrics evaluate_detections(const DatasetReader& reader, const Comm& comm,
                                     const std::array<double, kDetectionClasses>& iou_thresholds,
                                     const std::array<double, 6>& range,
                                     const std::function<std::vector<Detection>(int64_t, const Frame&)>& detect) {
  require(reader.kind().has_boxes, reader.shard_paths().front() + ": dataset has no boxes to evaluate against");
  DetectionMetrics metrics;
  metrics.iou_thresholds = iou_thresholds;
  const DatasetKind& kind = reader.kind();
  const bool kitti = has_kitti_annotation(kind);
  std::vector<KittiEvalFrame> kitti_frames;
  run_agreed(comm, [&] {
    for (int64_t f = comm.rank(); f < reader.num_frames(); f += comm.size()) {
      const Frame frame = reader.read(f);
      const std::vector<Detection> detections = detect(f, frame);
      if (kitti) {
        KittiEvalFrame& k = kitti_frames.emplace_back();
        k.truth = frame.objects;
        const KittiCalib calib = calib_from_values(frame.calib);
        const KittiCamera camera = camera_from_values(frame.camera);
        for (const Detection& d : detections) {
          std::optional<KittiObject> result =
              kitti_result(d.box, calib, camera, kBoxClassNames[size_t(d.label)], d.score);
          if (result) k.detections.push_back(std::move(*result));
        }
      }
      std::vector<float> truth;
      std::vector<uint8_t> labels;
      for (int64_t k = 0; k < frame.num_boxes(); ++k) {
        const float* box = &frame.boxes[size_t(7 * k)];
        if (box[0] < range[0] || box[0] >= range[3] || box[1] < range[1] || box[1] >= range[4]) continue;
        truth.insert(truth.end(), box, box + 7);
        labels.push_back(frame.box_labels[size_t(k)]);
      }
      match_frame(truth, labels, detections, metrics);
    }
  });
  gather_detection_matches(metrics, comm);
  if (comm.is_root()) finish_detection_metrics(metrics);
  if (kitti) {
    KittiMetrics k = kitti_metrics_of(kitti_frames, comm);
    if (comm.is_root()) metrics.kitti = k;
  }
  return metrics;
}

std::string detection_table(const DetectionMetrics& m) {
  std::string out;
  char line[192];
  std::snprintf(line, sizeof line, "%-11s %7s %9s %7s %8s %8s %8s %8s %8s\n", "class", "objects", "BEV AP", "@IoU",
                "d0.5m", "d1m", "d2m", "d4m", "mean");
  out += line;
  for (int c = 0; c < kDetectionClasses; ++c) {
    const int64_t gt = m.matches[size_t(c)].ground_truth;
    if (gt == 0) {
      std::snprintf(line, sizeof line, "%-11s %7d %9s\n", kBoxClassNames[size_t(c + 1)], 0, "-");
    } else {
      const auto& d = m.ap_distance[size_t(c)];
      std::snprintf(line, sizeof line, "%-11s %7lld %9.4f %7.2f %8.4f %8.4f %8.4f %8.4f %8.4f\n",
                    kBoxClassNames[size_t(c + 1)], static_cast<long long>(gt), m.ap_bev[size_t(c)],
                    m.iou_thresholds[size_t(c)], d[0], d[1], d[2], d[3], m.ap_distance_mean[size_t(c)]);
    }
    out += line;
  }
  std::snprintf(line, sizeof line, "mAP BEV (R40) %.4f, mAP centre distance %.4f; %lld frames\n", m.mean_ap_bev,
                m.mean_ap_distance, static_cast<long long>(m.frames));
  out += line;
  if (m.kitti) out += "\nKITTI protocol (camera field of view, devkit rules):\n" + kitti_table(*m.kitti);
  return out;
}

void write_metrics(JsonWriter& json, const DetectionMetrics& m) {
  json.key("map_bev").value(m.mean_ap_bev).key("map_distance").value(m.mean_ap_distance).key("frames").value(m.frames);
  json.key("classes").begin_object();
  for (int c = 0; c < kDetectionClasses; ++c) {
    const ClassMatches& cm = m.matches[size_t(c)];
    json.key(kBoxClassNames[size_t(c + 1)]).begin_object().key("objects").value(cm.ground_truth);
    json.key("detections").value(int64_t(cm.scores.size()));
    if (cm.ground_truth > 0) {
      json.key("ap_bev").value(m.ap_bev[size_t(c)]).key("iou").value(m.iou_thresholds[size_t(c)]);
      json.key("ap_distance").begin_object();
      for (size_t t = 0; t < kCentreDistanceThresholds.size(); ++t) {
        char name[16];
        std::snprintf(name, sizeof name, "%gm", kCentreDistanceThresholds[t]);
        json.key(name).value(m.ap_distance[size_t(c)][t]);
      }
      json.end_object().key("ap_distance_mean").value(m.ap_distance_mean[size_t(c)]);
    }
    json.end_object();
  }
  json.end_object();
  if (m.kitti) write_kitti_metrics(json, *m.kitti);
}

}  // namespace lt
