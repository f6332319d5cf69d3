#pragma once
// Checkpoints, schema `lidartrain.checkpoint` v1 (DESIGN.md §8):
//   / attrs            schema, version, model, step, epoch, samples_seen, world_size, seed, git_sha,
//                      created, config (the resolved INI text)
//   /model/<name>      parameters, PyTorch names and layouts
//   /buffers/<name>    BN running statistics
//   /optimizer/<name>/<state>   exp_avg, exp_avg_sq (AdamW) or momentum_buffer (SGD); attrs on
//                      /optimizer: type, steps
// Every dataset is Fletcher32-checksummed. Written to PATH.tmp and renamed, so a checkpoint exists
// whole or not at all. (Parallel collective writing, /state and LATEST rotation: issue 5.)
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "src/nn/params.hpp"

namespace lt {

struct CheckpointMeta {
  std::string model;
  int64_t step = 0, epoch = 0, samples_seen = 0;
  int64_t world_size = 1;
  uint64_t seed = 0;
  std::string git_sha, created, config;
  std::string optimizer_type;  // "" when no optimizer state is stored
  int64_t optimizer_steps = 0;
};

using OptimizerState = std::vector<std::pair<std::string, std::vector<float>*>>;

void write_checkpoint(const std::string& path, const CheckpointMeta& meta, const ParamStore& params,
                      const ParamStore& buffers, const OptimizerState& optimizer_state);
CheckpointMeta read_checkpoint_meta(const std::string& path);
// Loads every tensor `params` and `buffers` declare (InputError naming the tensor when one is missing
// or shaped differently); and the optimizer state when `optimizer_state` is not empty.
void read_checkpoint_tensors(const std::string& path, ParamStore& params, ParamStore& buffers,
                             const OptimizerState& optimizer_state);

}  // namespace lt
