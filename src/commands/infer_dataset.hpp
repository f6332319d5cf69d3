#pragma once
// lidartrain infer --data DIR --out DIR: a checkpoint over every frame of a dataset, on every rank of the
// job (issue 14). Frames are split over the ranks by longest-processing-time-first on their stored cost
// (no rank waits on another), each rank reads the frames it makes on the prefetching loader's thread and writes its
// frames' results as it makes them, each file under a temporary name then renamed, so a killed job rerun with the same
// command skips every frame already done (reading its outputs back for the rank's predictions file). SIGUSR1/SIGTERM
// stop after the frame in hand with exit 75 (requeue). Outputs:
//   semseg  OUT/sequences/<seq>/predictions/<frame>.label   (SemanticKITTI: uint32 raw ids per point;
//           <seq>/<frame> from a frame id "sequences/<seq>/<frame>", else the id's directory and name)
//   bevdet  OUT/boxes/<frame id>.txt      one LiDAR-frame box per line, floats that read back exactly
//           OUT/label_2/<name>.txt        KITTI results (camera frame, 2D box, alpha; the boxes in the camera's
//                                         field of view), where the dataset has cameras; <name> is the frame id
//                                         of a KITTI frame, else the frame index (kitti_frame_name)
//   OUT/predictions/rank-R-of-N.h5        every rank's frames (io/predictions.hpp), for eval --predictions
//   OUT/manifest.json   checkpoint and dataset identities, frames done, per-rank throughput, command line
//   OUT/CHECKPOINT      the checkpoint identity the outputs belong to (refused for another unless --force)
#include <string>

#include "io/predictions.hpp"
#include "io/raw_formats.hpp"
#include "mpi/comm.hpp"
#include "src/models/model.hpp"

namespace lt {

struct DatasetInference {
  std::string checkpoint, data, out, device = "auto";
  Precision precision = Precision::fp32;
  std::string boxes = "auto";  // bevdet: auto (label_2 where the dataset has cameras) | label_2 | lidar
  bool force = false;
};

int infer_dataset(const DatasetInference& job, const Comm& comm);

// Detections as text: a header line and one LiDAR-frame box per line ("Car x y z dx dy dz heading score").
std::string boxes_text(const std::vector<Detection>& detections);
// Detections as KITTI label_2 result lines (io/raw_formats.hpp: kitti_result): camera frame, the 2D box
// projected through P2, alpha; the boxes outside the camera's field of view are left out.
std::string label_2_text(const std::vector<Detection>& detections, const KittiCalib& calib, const KittiCamera& camera);

// The inverse of boxes_text: InputError naming `where` and the line.
std::vector<Detection> parse_boxes_text(const std::string& text, const std::string& where);

// OUT/label_2/<name>.txt and OUT/predictions/rank-RRRRR-of-NNNNN.h5.
// label_2 files are named as in a KITTI directory (io/raw_formats.hpp: kitti_frame_name).
std::string label2_path(const std::string& out, const std::string& id, int64_t index);
std::string predictions_file_path(const std::string& out, int rank, int ranks);

// Frame f's output path under `out` for a model that predicts `output` and frame id `id`: a SemanticKITTI
// .label for point labels, a box text for boxes.
std::string prediction_path(const std::string& out, ModelOutput output, const std::string& id);

// Frames of `costs` per rank: longest first (ties by index) to the least-loaded rank (ties: the lowest),
// each rank's frames then in index order. The same for every rank count's computation on every rank.
std::vector<std::vector<int64_t>> lpt_split(const std::vector<int64_t>& costs, int ranks);

}  // namespace lt
