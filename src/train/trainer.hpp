#pragma once
// One training run, top to bottom (STYLE.md: data flows one way): frames → batch → model → loss →
// gradients → all-reduce → optimizer → metrics → checkpoint.
#include <memory>
#include <string>

#include "mpi/comm.hpp"
#include "src/train/config.hpp"

namespace lt {

struct TrainRun {
  TrainConfig config;
  std::string config_ini;  // the resolved config, stored in run_dir/config.ini and in checkpoints
  std::string run_dir;
  double timeout_s = 1800;      // watchdog: a phase longer than this aborts the job (0: off)
  std::string resume = "auto";  // auto | none | a checkpoint path
  // Filled by train(): what every checkpoint records of the run (src/train/provenance.hpp).
  std::string dataset_id, provenance;
};

// Trains (resuming as run.resume says), checkpoints every checkpoint.every steps, at the end and when
// stopped by SIGUSR1/SIGTERM or train.max_time, evaluates on data.val if given. Returns the process exit
// code: kExitOk, or kExitRequeue when it stopped early with a checkpoint.
int train(const TrainRun& run, const Comm& comm);

}  // namespace lt
