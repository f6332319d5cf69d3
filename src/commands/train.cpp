// lidartrain train: the config of DESIGN.md §3, then the training loop of src/train/trainer.cpp.
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <iostream>

#include "src/cli/options.hpp"
#include "src/commands/commands.hpp"
#include "src/common/error.hpp"
#include "src/train/trainer.hpp"

namespace lt {

int train_main(int argc, char** argv, const Comm& comm) {
  po::options_description run_options("Run");
  run_options.add_options()("data", po::value<std::string>()->value_name("DIR"),
                            "training dataset (overrides data.train)")(
      "run-dir", po::value<std::string>()->value_name("DIR"),
      "where config.ini, metrics.jsonl and checkpoints/ go (default runs/<model>-<time>)")(
      "resume", po::value<std::string>()->default_value("auto")->value_name("auto|none|PATH"),
      "auto: the newest intact checkpoint in RUN_DIR/checkpoints, if any; none: start over; or a checkpoint file")(
      "timeout", po::value<double>()->default_value(1800)->value_name("SECONDS"),
      "watchdog: a phase of a step (data, forward, backward, a collective) lasting longer aborts the whole job "
      "with a message naming the phase and the rank (0: off)");
  po::options_description options;
  options.add(run_options).add(config_options());
  const ParsedCommand parsed = parse_command("train", options, {}, argc, argv);
  if (parsed.help) {
    if (comm.is_root())
      std::cout << usage_text("train", "--config CFG [--data DIR] [--run-dir DIR] [--resume auto|none|PATH]",
                              "Trains a model, data-parallel under mpirun/srun. Writes the resolved\n"
                              "config, metrics.jsonl (one line per step) and checkpoints to the run directory.",
                              options);
    return kExitOk;
  }
  po::variables_map values = parsed.values;
  if (values.count("data")) values.at("data.train").value() = values["data"].value();
  TrainRun run;
  run.config = train_config_from(values);
  run.config_ini = config_to_ini(values);
  if (values.count("run-dir")) {
    run.run_dir = values["run-dir"].as<std::string>();
  } else {
    char stamp[32];
    const std::time_t t = std::time(nullptr);
    std::strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", std::localtime(&t));
    run.run_dir = "runs/" + run.config.model_name + "-" + stamp;
  }
  require_non_negative(values, "timeout");
  run.timeout_s = values["timeout"].as<double>();
  run.resume = values["resume"].as<std::string>();
  return train(run, comm);
}

}  // namespace lt
