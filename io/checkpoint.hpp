#pragma once
// Checkpoints, schema `lidartrain.checkpoint` v1 (DESIGN.md §8):
//   / attrs            schema, version, model, step, epoch, samples_seen, world_size, seed, git_sha,
//                      created, config (the resolved INI text)
//   /model/<name>      parameters, PyTorch names and layouts
//   /buffers/<name>    BN running statistics
//   /optimizer/<name>/<state>   exp_avg, exp_avg_sq (AdamW) or momentum_buffer (SGD); attrs on
//                      /optimizer: type, steps
//   /state/position    int64 (3)   step (the LR schedule's position), samples_seen (global frames
//                                  consumed: the data position), global_batch of the writing run
//   /state/cost_model_sums     float64 (5)   the online cost model's normal-equation sums
//   /state/cost_model_history  float64 (K,3) (from_step, per_point, per_frame) of each refit so far
//   The random numbers are counter-based, keyed by (seed, epoch, frame): the seed is all their state.
// Every dataset is Fletcher32-checksummed and the file's metadata is checksummed too (HDF5's 1.10
// format), so a flipped bit anywhere is a read error. Written to PATH.tmp, fsynced, renamed and the
// directory fsynced, so a checkpoint exists whole or not at all; a write that fails (full disk, no
// permission, I/O error) removes PATH.tmp and is a WriteError naming it and the OS error.
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "mpi/comm.hpp"
#include "src/common/params.hpp"

namespace lt {

struct CheckpointMeta {
  std::string model;
  int64_t step = 0, epoch = 0, samples_seen = 0;
  int64_t world_size = 1;
  uint64_t seed = 0;
  std::string git_sha, created, config;
  // Provenance (src/train/provenance.hpp); empty, false in checkpoints from before these fields.
  std::string git_diff;             // "" when the tree was clean, else the change's hash
  std::string dataset, dataset_id;  // the training data's directory and identity
  std::string provenance;           // JSON: code, build, libraries, command line, world, hosts, dataset
  std::string optimizer_type;       // "" when no optimizer state is stored
  int64_t optimizer_steps = 0;
};

using OptimizerState = std::vector<std::pair<std::string, std::vector<float>*>>;

struct CheckpointState {
  int64_t step = 0, samples_seen = 0, global_batch = 0;
  std::vector<double> cost_model_sums = std::vector<double>(5, 0.0);
  std::vector<double> cost_model_history;  // (K, 3)
  // fp16 training's dynamic loss scaler: {scale, steps since the last overflow}; empty for a run without
  // (then /state/loss_scaler is not written, and a run with one starts from train.loss_scale).
  std::vector<double> loss_scaler;
};

// With `comm`, every rank of it calls this with the same arguments (the replicated parameters and state):
// rank 0 builds the file in memory and writes it (io/hdf5_util.hpp: why HDF5 does not write it itself),
// and every rank learns the outcome, so a failure is a WriteError on every rank and none is left waiting
// in a collective. Without, this process writes it alone.
void write_checkpoint(const std::string& path, const CheckpointMeta& meta, const ParamStore& params,
                      const ParamStore& buffers, const OptimizerState& optimizer_state,
                      const CheckpointState& state = {}, const Comm* comm = nullptr);
CheckpointMeta read_checkpoint_meta(const std::string& path);
CheckpointState read_checkpoint_state(const std::string& path);
// Reads every dataset of the file, which verifies every checksum, and requires every floating-point value
// to be finite (a diverged run's checkpoint is no place to resume from); InputError naming the file and
// what is damaged otherwise.
void verify_checkpoint(const std::string& path);

// "1.10.8": the HDF5 library this process runs with.
std::string hdf5_library_version();

// True when `path` is an HDF5 file whose schema attribute says lidartrain.checkpoint.
bool is_checkpoint_file(const std::string& path);
// Name and element count of every dataset under /model (parameters) or /buffers.
std::vector<std::pair<std::string, int64_t>> checkpoint_tensor_sizes(const std::string& path, const std::string& group);

// The checkpoint `--resume auto` continues from in `dir` (RUN_DIR/checkpoints): the newest ckpt-*.h5
// whose checksums verify; "" when there is none. Damaged ones are skipped, each with a line in
// `skipped` saying why; *.tmp files left by a killed writer are removed.
std::string find_resume_checkpoint(const std::string& dir, std::vector<std::string>& skipped);
// Loads every tensor `params` and `buffers` declare (InputError naming the tensor when one is missing
// or shaped differently); and the optimizer state when `optimizer_state` is not empty.
void read_checkpoint_tensors(const std::string& path, ParamStore& params, ParamStore& buffers,
                             const OptimizerState& optimizer_state);

}  // namespace lt
