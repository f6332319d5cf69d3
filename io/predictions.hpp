#pragma once
// Predictions files, schema `lidartrain.predictions` v1: what `infer --data` made, one HDF5 file per rank
// under OUT/predictions/, that h5py opens and `eval --predictions` scores without the model.
//
//   / attrs         schema, version=1, model ("semseg" | "bevdet"), checkpoint_identity, dataset_id,
//                   rank, ranks, frames
//   /frame_index    int64   (F)      the frame's index in the dataset
//   /frame_ids      string  (F)      the frame's id in the dataset
//   semseg: /labels uint8 (P) training id per point; /point_offsets int64 (F+1)
//   bevdet: /boxes float32 (B, 7) LiDAR frame as the dataset's; /box_labels uint8 (B) 1..3;
//           /scores float32 (B); /box_offsets int64 (F+1); /point_range float64 (6) the model's range
//
// Frame f (row f of the index) owns rows [offsets[f], offsets[f+1]) of its per-point or per-box arrays.
// A writer appends frames to the file in memory (chunked, Fletcher32) and writes it whole when it commits,
// through `path.tmp` and a rename (io/hdf5_util.hpp): a file at `path` is whole. The memory it holds is
// the file's size: one byte per point for semseg, 36 per box for bevdet. Readers check everything they read: schema,
// shapes, offsets, ids and values.
#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace lt {

struct FramePrediction {
  int64_t frame_index = 0;
  std::string id;
  std::vector<uint8_t> labels;      // semseg: training id per point
  std::vector<float> boxes;         // bevdet: (B, 7)
  std::vector<uint8_t> box_labels;  // (B)
  std::vector<float> scores;        // (B)
};

struct PredictionsHeader {
  std::string model, checkpoint_identity, dataset_id;
  // What the model predicts: a training id per point (/labels, /point_offsets), else boxes (/boxes,
  // /box_labels, /scores, /box_offsets, /point_range). A reader takes it from the datasets the file holds.
  bool point_labels = true;
  int64_t rank = 0, ranks = 1;
  std::array<double, 6> point_range{};  // boxes
};

class PredictionsWriter {
 public:
  PredictionsWriter(const std::string& path, const PredictionsHeader& header);
  ~PredictionsWriter();  // without commit(): nothing is written
  PredictionsWriter(const PredictionsWriter&) = delete;
  PredictionsWriter& operator=(const PredictionsWriter&) = delete;
  void add(const FramePrediction& frame);  // InputError for a frame that does not fit the model
  void commit();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Every predictions file of a directory (`*.h5`, in name order), as one set: the files must agree on
// model, checkpoint and dataset, and no frame may appear twice.
class PredictionsReader {
 public:
  explicit PredictionsReader(const std::string& dir);
  ~PredictionsReader();
  const PredictionsHeader& header() const;  // of the first file (rank: 0, ranks: the files' count)
  int64_t num_frames() const;
  bool has(int64_t frame_index) const;
  // InputError naming the file and frame if it is not there or damaged.
  FramePrediction read(int64_t frame_index) const;
  const std::string& id(int64_t frame_index) const;
  int64_t count(int64_t frame_index) const;  // points (semseg) or boxes (bevdet) of the frame

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace lt
