#pragma once
// A training run's checkpoint policy (DESIGN.md §8): where its checkpoints go and which are kept, which
// one it continues from, and whether a checkpoint is of its model. The file itself: io/checkpoint.hpp.
#include <cstdint>
#include <string>

#include "io/checkpoint.hpp"
#include "mpi/comm.hpp"
#include "src/models/model.hpp"
#include "src/train/optimizer.hpp"
#include "src/train/trainer.hpp"

namespace lt {

// RUN_DIR/checkpoints/ckpt-<8-digit step>.h5.
std::string checkpoint_path(const std::string& run_dir, int64_t step);

// Every rank: RUN_DIR/checkpoints/ckpt-<step>.h5 written (rank 0 writes the replicated state; durable
// once written), then rank 0 points LATEST at it and deletes the oldest beyond checkpoint.keep: at every
// moment LATEST names a whole checkpoint. A failure anywhere is an error on every rank (a WriteError for
// a write that failed), and LATEST is then untouched. Returns the checkpoint's path.
std::string save_checkpoint(const TrainRun& run, Model& model, Optimizer& optimizer,
                            const CheckpointState& state_of_run, int64_t epoch, const Comm& comm);

// The checkpoint to continue from, chosen on rank 0 and the same on every rank: none for --resume none;
// PATH, verified, for --resume PATH; for auto the newest in RUN_DIR/checkpoints whose checksums verify
// (damaged ones and .tmp files left by a killed writer reported and passed over), or none ("").
std::string choose_resume_checkpoint(const TrainRun& run, const Comm& comm);

// A checkpoint continues only the same model: every [model] key of the two resolved configs must agree;
// InputError naming the first that differs otherwise.
void require_same_model(const std::string& checkpoint_config, const std::string& run_config, const std::string& path);

// LATEST's checkpoint in RUN_DIR/checkpoints, as "<path> (LATEST)", or "none written yet".
std::string last_good_checkpoint(const std::string& run_dir);

}  // namespace lt
