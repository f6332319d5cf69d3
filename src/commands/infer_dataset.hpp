#pragma once
// lidartrain infer --data DIR --out DIR: a checkpoint over every frame of a dataset, on every rank of the
// job (issue 14, first part). Frames are split over the ranks by longest-processing-time-first on their
// stored cost (no rank waits on another), each rank writes its frames' results as it makes them, each
// file under a temporary name then renamed, so a killed job rerun with the same command skips every
// frame already done. Outputs:
//   semseg  OUT/sequences/<seq>/predictions/<frame>.label   (SemanticKITTI: uint32 raw ids per point;
//           <seq>/<frame> from a frame id "sequences/<seq>/<frame>", else the id's directory and name)
//   bevdet  OUT/boxes/<frame id>.txt                          (one LiDAR-frame box per line, as infer's)
//   OUT/manifest.json   checkpoint and dataset identities, frames done, per-rank throughput, command line
//   OUT/CHECKPOINT      the checkpoint identity the outputs belong to (refused for another unless --force)
#include <string>

#include "io/raw_formats.hpp"
#include "mpi/comm.hpp"
#include "src/models/bevdet.hpp"

namespace lt {

struct DatasetInference {
  std::string checkpoint, data, out, device = "auto";
  bool force = false;
};

int infer_dataset(const DatasetInference& job, const Comm& comm);

// Detections as text: KITTI label_2 lines (camera frame) with a calibration, else a header line and one
// LiDAR-frame box per line ("Car x y z dx dy dz heading score").
std::string boxes_text(const std::vector<Detection>& detections, const KittiCalib* calib);

// Frame f's output path under `out` for model `model` ("semseg" | "bevdet") and frame id `id`.
std::string prediction_path(const std::string& out, const std::string& model, const std::string& id);

// Frames of `costs` per rank: longest first (ties by index) to the least-loaded rank (ties: the lowest),
// each rank's frames then in index order. The same for every rank count's computation on every rank.
std::vector<std::vector<int64_t>> lpt_split(const std::vector<int64_t>& costs, int ranks);

}  // namespace lt
