#pragma once
// The experiment config (DESIGN.md §3): every key of `[section] key = value` INI files, their defaults,
// and the structs the training loop reads. A checkpoint stores the resolved config as INI text, so
// eval/infer rebuild the same model from it.
#include <string>
#include <vector>

#include "src/cli/options.hpp"
#include "src/models/bevdet.hpp"
#include "src/models/semseg.hpp"
#include "src/train/optimizer.hpp"

namespace lt {

struct TrainConfig {
  std::string train_data, val_data;
  std::string model_name = "semseg";
  SemsegConfig semseg;
  BevdetConfig bevdet;
  int64_t steps = 1000;
  int batch_size = 2;  // frames per rank per micro-batch
  int accumulate = 1;  // micro-batches per rank per step
  int64_t bucket_bytes = 25'000'000;
  int64_t cost_refit = 0;  // steps between cost-model refits (0: off)
  double lr = 2e-3;
  OptimizerConfig optimizer;
  ScheduleConfig schedule;
  double grad_clip = 10.0;
  std::vector<float> class_weights;  // empty: all 1
  bool augment = true;
  double max_rotation = 3.141592653589793;  // rad
  std::string balance = "lpt";
  bool sync_bn = false;
  uint64_t seed = 1;
  std::string comm = "auto";                  // auto | mpi | nccl (mpi/reduce_backend.hpp)
  std::string device = "auto";                // auto | cpu | cuda (src/train/device.hpp)
  bool deterministic = true;                  // cuda: deterministic cuDNN convolution algorithms only
  bool cuda_graphs = false;                   // cuda: the dense BEV part captured once per batch size and replayed
  Precision precision = Precision::fp32;      // fp32 | bf16 | fp16: what GEMM inputs are read as (cuda)
  double loss_scale = 65536;                  // fp16: the dynamic loss scale's start
  int64_t loss_scale_growth_interval = 2000;  // fp16: overflow-free steps before it doubles
  std::string on_nonfinite = "stop";          // stop | skip: a step whose loss or gradient norm is not finite
  int max_nonfinite_skips = 5;                // skip: more skipped steps in a row than this stop the run
  int threads = 0;
  double max_time_s = 0;         // checkpoint and exit (requeue) before this much wall time (0: none)
  int64_t checkpoint_every = 0;  // 0: only at the end
  int checkpoint_keep = 3;
  int64_t log_every = 10;
  std::string timeline, prom_file;
};

// Every config key with its default.
po::options_description config_options();
// Validates (choices, ranges, lists) and converts; InputError naming the key otherwise.
TrainConfig train_config_from(const po::variables_map& values);
// The resolved config as INI text ([section] key = value), every key, defaults included.
std::string config_to_ini(const po::variables_map& values);
// Parses INI text with config_options() (for configs stored in checkpoints).
po::variables_map parse_config_text(const std::string& text, const std::string& where);

}  // namespace lt
