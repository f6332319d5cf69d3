#include "src/train/evaluate.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

#include "src/common/error.hpp"
#include "src/train/data.hpp"
#include "src/train/detection_eval.hpp"
#include "src/train/provenance.hpp"

namespace lt {

SegmentationMetrics metrics_from_confusion(std::vector<int64_t> confusion, int64_t frames) {
  constexpr int K = kNumSemanticClasses;
  SegmentationMetrics m;
  m.confusion = std::move(confusion);
  m.frames = frames;
  m.iou.assign(K, std::numeric_limits<double>::quiet_NaN());
  int64_t correct = 0, counted = 0;
  double sum = 0;
  for (int c = 1; c < K; ++c) {
    int64_t truth = 0, predicted = 0;
    for (int k = 0; k < K; ++k) {
      truth += m.confusion[c * K + k];
      if (k > 0) predicted += m.confusion[k * K + c];  // points of unlabeled truth do not count
    }
    const int64_t tp = m.confusion[c * K + c];
    correct += tp;
    counted += truth;
    if (truth == 0) continue;
    m.iou[c] = double(tp) / double(truth + predicted - tp);
    sum += m.iou[c];
    m.classes_present += 1;
  }
  m.points = counted;
  m.miou = m.classes_present > 0 ? sum / m.classes_present : 0.0;
  m.accuracy = counted > 0 ? double(correct) / double(counted) : 0.0;
  return m;
}

SegmentationMetrics evaluate_point_labels(Model& model, const DatasetReader& reader, const Comm& comm) {
  constexpr int K = kNumSemanticClasses;
  require(reader.kind().has_labels, reader.shard_paths().front() + ": dataset has no point labels to evaluate against");
  std::vector<int64_t> confusion(K * K, 0);
  int64_t frames = 0;
  run_agreed(comm, [&] {
    for (int64_t f = comm.rank(); f < reader.num_frames(); f += comm.size()) {
      const Frame frame = reader.read(f);
      const PointBatch batch = make_batch({frame});
      const std::vector<uint8_t> predicted = std::move(model.predict(batch).front().labels);
      for (int64_t p = 0; p < batch.num_points(); ++p) confusion[batch.labels[p] * K + predicted[p]] += 1;
      ++frames;
    }
  });
  return metrics_from_confusion(comm.sum(confusion), comm.sum(frames));
}

std::string iou_table(const SegmentationMetrics& m) {
  std::string out;
  char line[128];
  std::snprintf(line, sizeof line, "%-14s %8s %12s\n", "class", "IoU", "points");
  out += line;
  for (int c = 1; c < kNumSemanticClasses; ++c) {
    int64_t truth = 0;
    for (int k = 0; k < kNumSemanticClasses; ++k) truth += m.confusion[c * kNumSemanticClasses + k];
    if (std::isnan(m.iou[c]))
      std::snprintf(line, sizeof line, "%-14s %8s %12lld\n", kSemanticClassNames[c], "-",
                    static_cast<long long>(truth));
    else
      std::snprintf(line, sizeof line, "%-14s %8.4f %12lld\n", kSemanticClassNames[c], m.iou[c],
                    static_cast<long long>(truth));
    out += line;
  }
  std::snprintf(line, sizeof line, "mIoU %.4f over %d classes present; accuracy %.4f; %lld frames, %lld points\n",
                m.miou, m.classes_present, m.accuracy, static_cast<long long>(m.frames),
                static_cast<long long>(m.points));
  return out + line;
}

void write_metrics(JsonWriter& json, const SegmentationMetrics& m) {
  json.key("miou").value(m.miou).key("classes_present").value(m.classes_present).key("accuracy").value(m.accuracy);
  json.key("frames").value(m.frames).key("points").value(m.points);
  json.key("iou").begin_object();
  for (int c = 1; c < kNumSemanticClasses; ++c)
    if (!std::isnan(m.iou[c])) json.key(kSemanticClassNames[c]).value(m.iou[c]);
  json.end_object();
  json.key("confusion").begin_array();
  for (int t = 0; t < kNumSemanticClasses; ++t) {
    json.begin_array();
    for (int p = 0; p < kNumSemanticClasses; ++p) json.value(m.confusion[t * kNumSemanticClasses + p]);
    json.end_array();
  }
  json.end_array();
}

FramePrediction prediction_of(int64_t frame_index, const std::string& id, const std::vector<Detection>& detections) {
  FramePrediction p;
  p.frame_index = frame_index;
  p.id = id;
  for (const Detection& d : detections) {
    p.boxes.insert(p.boxes.end(), d.box.begin(), d.box.end());
    p.box_labels.push_back(uint8_t(d.label));
    p.scores.push_back(d.score);
  }
  return p;
}

std::vector<Detection> detections_of(const FramePrediction& p) {
  std::vector<Detection> detections(p.box_labels.size());
  for (size_t b = 0; b < detections.size(); ++b) {
    std::copy(p.boxes.begin() + std::ptrdiff_t(7 * b), p.boxes.begin() + std::ptrdiff_t(7 * b + 7),
              detections[b].box.begin());
    detections[b].label = p.box_labels[b];
    detections[b].score = p.scores[b];
  }
  return detections;
}

std::string evaluate_predictions(const PredictionsReader& predictions, const std::string& where,
                                 const DatasetReader& reader, const std::string& data, const Comm& comm,
                                 JsonWriter& json, const std::vector<double>& iou_thresholds) {
  const PredictionsHeader& header = predictions.header();
  const std::string dataset_id = dataset_identity(reader);
  require(header.dataset_id == dataset_id, where + ": predictions of dataset " + header.dataset_id + ", and " + data +
                                               " is dataset " + dataset_id + " (other frames)");
  for (int64_t f = 0; f < reader.num_frames(); ++f) {
    require(predictions.has(f), where + ": no prediction for frame " + reader.frame_id(f) +
                                    " (did infer --data finish? its manifest.json is written at the end)");
    require(predictions.id(f) == reader.frame_id(f), where + ": frame " + std::to_string(f) + " is " +
                                                         predictions.id(f) + " there and " + reader.frame_id(f) +
                                                         " in the dataset");
    require(!header.point_labels || predictions.count(f) == reader.points_per_frame()[size_t(f)],
            where + ": frame " + reader.frame_id(f) + ": " + std::to_string(predictions.count(f)) + " labels for " +
                std::to_string(reader.points_per_frame()[size_t(f)]) + " points");
  }
  require(predictions.num_frames() == reader.num_frames(), where + ": " + std::to_string(predictions.num_frames()) +
                                                               " predictions for " +
                                                               std::to_string(reader.num_frames()) + " frames");
  json.key("model").value(header.model).key("checkpoint_identity").value(header.checkpoint_identity);
  if (header.point_labels) {
    constexpr int K = kNumSemanticClasses;
    require(reader.kind().has_labels, data + ": dataset has no point labels to evaluate against");
    std::vector<int64_t> confusion(K * K, 0);
    int64_t frames = 0;
    run_agreed(comm, [&] {
      for (int64_t f = comm.rank(); f < reader.num_frames(); f += comm.size()) {
        const Frame frame = reader.read(f);
        const FramePrediction p = predictions.read(f);
        for (size_t i = 0; i < p.labels.size(); ++i) confusion[size_t(frame.labels[i] * K + p.labels[i])] += 1;
        ++frames;
      }
    });
    const SegmentationMetrics m = metrics_from_confusion(comm.sum(confusion), comm.sum(frames));
    write_metrics(json, m);
    return iou_table(m);
  }
  std::array<double, kDetectionClasses> thresholds = kBevIouThresholds;
  if (!iou_thresholds.empty()) std::copy(iou_thresholds.begin(), iou_thresholds.end(), thresholds.begin());
  const DetectionMetrics m =
      evaluate_detections(reader, comm, thresholds, header.point_range,
                          [&](int64_t f, const Frame&) { return detections_of(predictions.read(f)); });
  write_metrics(json, m);
  return detection_table(m);
}

std::string evaluate_model(Model& model, const DatasetReader& reader, const Comm& comm, JsonWriter& json,
                           const std::vector<double>& iou_thresholds) {
  if (model.output() == ModelOutput::point_labels) {
    const SegmentationMetrics m = evaluate_point_labels(model, reader, comm);
    write_metrics(json, m);
    return iou_table(m);
  }
  std::array<double, kDetectionClasses> thresholds = kBevIouThresholds;
  if (!iou_thresholds.empty()) std::copy(iou_thresholds.begin(), iou_thresholds.end(), thresholds.begin());
  const DetectionMetrics m = evaluate_boxes(model, reader, comm, thresholds);
  write_metrics(json, m);
  return detection_table(m);
}

}  // namespace lt
