// lidartrain train: the config schema of DESIGN.md §3. Training itself arrives with the layer engine
// (issue 3); until then the command validates its config and says that it is not built.
#include <cstdio>
#include <iostream>

#include "src/cli/options.hpp"
#include "src/commands/commands.hpp"
#include "src/common/error.hpp"

namespace lt {

int train_main(int argc, char** argv, const Comm& comm) {
  po::options_description run("Run");
  run.add_options()("data", po::value<std::string>()->value_name("DIR"), "training dataset (overrides data.train)")(
      "run-dir", po::value<std::string>()->value_name("DIR"), "where config.ini, metrics.jsonl and checkpoints/ go")(
      "resume", po::value<std::string>()->default_value("auto")->value_name("auto|none|PATH"),
      "checkpoint to resume from");
  po::options_description config("Config keys ([section] key = value in --config, or --section.key=value)");
  config.add_options()("data.train", po::value<std::string>(), "training dataset directory")(
      "data.val", po::value<std::string>(), "validation dataset directory")(
      "model.name", po::value<std::string>(), "semseg | bevdet")("train.steps", po::value<int64_t>(),
                                                                 "optimizer steps")(
      "train.batch_size", po::value<int>(), "frames per rank per step")("train.lr", po::value<double>(),
                                                                        "peak learning rate")(
      "train.optimizer", po::value<std::string>()->default_value("adamw"), "adamw | sgd")(
      "train.schedule", po::value<std::string>()->default_value("onecycle"), "onecycle | cosine")(
      "train.weight_decay", po::value<double>(), "decoupled weight decay (not on BN and biases)")(
      "train.grad_clip", po::value<double>(), "global gradient-norm clip (0: off)")(
      "train.balance", po::value<std::string>()->default_value("lpt"), "lpt | bucket | none")(
      "train.sync_bn", po::value<bool>()->default_value(false), "synchronise BatchNorm statistics over ranks")(
      "train.seed", po::value<uint64_t>()->default_value(1), "seed of initialisation, data order, augmentation")(
      "train.threads", po::value<int>()->default_value(0), "OpenMP threads per rank (0: OpenMP's default)")(
      "checkpoint.every", po::value<int64_t>(), "steps between checkpoints")(
      "checkpoint.keep", po::value<int>(), "newest checkpoints kept")("log.every", po::value<int64_t>(),
                                                                      "steps between progress lines")(
      "log.timeline", po::value<std::string>(), "Chrome trace-event JSON of every rank's phases")(
      "log.prom_file", po::value<std::string>(), "Prometheus textfile-collector output");
  po::options_description options;
  options.add(run).add(config);
  const ParsedCommand parsed = parse_command("train", options, {}, argc, argv);
  if (parsed.help) {
    if (comm.is_root())
      std::cout << usage_text("train", "--config CFG [--data DIR] [--run-dir DIR] [--resume auto|none|PATH]",
                              "Trains a model (not built yet: arrives with the layer engine, issue 3).", options);
    return kExitOk;
  }
  const auto& values = parsed.values;
  require_choice(values, "model.name", {"semseg", "bevdet"});
  require_choice(values, "train.optimizer", {"adamw", "sgd"});
  require_choice(values, "train.schedule", {"onecycle", "cosine"});
  require_choice(values, "train.balance", {"lpt", "bucket", "none"});
  for (const char* key :
       {"train.steps", "train.batch_size", "train.lr", "checkpoint.every", "checkpoint.keep", "log.every"})
    require_positive(values, key);
  for (const char* key : {"train.weight_decay", "train.grad_clip", "train.threads"}) require_non_negative(values, key);
  if (comm.is_root())
    std::fprintf(stderr, "lidartrain train: config is valid, but training is not built yet (issue 3)\n");
  return kExitNotBuilt;
}

}  // namespace lt
