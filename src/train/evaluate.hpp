#pragma once
// Segmentation metrics: a confusion matrix over the 20 training ids (reduced over ranks), per-class IoU
// and mIoU over the classes present in the ground truth (id 0, unlabeled, is not a class).
#include <cstdint>
#include <string>
#include <vector>

#include "io/dataset.hpp"
#include "io/label_map.hpp"
#include "io/predictions.hpp"
#include "mpi/comm.hpp"
#include "src/common/json.hpp"
#include "src/models/model.hpp"

namespace lt {

struct SegmentationMetrics {
  std::vector<int64_t> confusion;  // (20, 20): [ground truth][prediction]
  std::vector<double> iou;         // (20), NaN for classes absent from the ground truth
  double miou = 0;
  int classes_present = 0;
  int64_t frames = 0, points = 0;
  double accuracy = 0;
};

SegmentationMetrics metrics_from_confusion(std::vector<int64_t> confusion, int64_t frames);
// Runs `model` (one that predicts point labels) in eval mode on every frame of `reader` (split over ranks)
// and reduces the confusion.
SegmentationMetrics evaluate_point_labels(Model& model, const DatasetReader& reader, const Comm& comm);
std::string iou_table(const SegmentationMetrics& metrics);
void write_metrics(JsonWriter& json, const SegmentationMetrics& metrics);

// Evaluates either model on `reader` (semseg: IoU; bevdet: AP at BEV IoU `iou_thresholds` per class, empty:
// KITTI's, detection_eval.hpp), adds the metrics to `json` and returns the table to print (both
// meaningful on rank 0).
// Scores the predictions `infer --data` stored in `where` (io/predictions.hpp) against `reader`'s ground truth, as
// evaluate_model would with the model that made them (the same numbers): every frame of the dataset
// must have its prediction, of the same id and size, from a dataset of the same identity.
std::string evaluate_predictions(const PredictionsReader& predictions, const std::string& where,
                                 const DatasetReader& reader, const std::string& data, const Comm& comm,
                                 JsonWriter& json, const std::vector<double>& iou_thresholds = {});

// Detections as a prediction's rows and back.
FramePrediction prediction_of(int64_t frame_index, const std::string& id, const std::vector<Detection>& detections);
std::vector<Detection> detections_of(const FramePrediction& prediction);

std::string evaluate_model(Model& model, const DatasetReader& reader, const Comm& comm, JsonWriter& json,
                           const std::vector<double>& iou_thresholds = {});

}  // namespace lt
