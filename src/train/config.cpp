#include "src/train/config.hpp"

#include <map>
#include <sstream>

#include "mpi/reduce_backend.hpp"
#include "src/common/error.hpp"
#include "src/models/registry.hpp"
#include "src/train/device.hpp"

namespace lt {

po::options_description config_options() {
  po::options_description options("Config keys ([section] key = value in --config, or --section.key=value)");
  options.add_options()("data.train", po::value<std::string>()->default_value(""), "training dataset directory")(
      "data.val", po::value<std::string>()->default_value(""), "validation dataset directory (evaluated at the end)")(
      "model.name", po::value<std::string>()->default_value("semseg"), model_names().c_str())(
      "model.head_channels", po::value<int>()->default_value(32), "head hidden width (bevdet: the shared conv's)");
  // Each model's own [model] keys (src/models/registry.cpp).
  for (const ModelEntry& entry : model_registry()) entry.declare_keys(options);
  options.add_options()("train.steps", po::value<int64_t>()->default_value(1000), "optimizer steps")(
      "train.batch_size", po::value<int>()->default_value(2), "frames per rank per micro-batch")(
      "train.accumulate", po::value<int>()->default_value(1),
      "micro-batches per rank per step, gradients accumulated (global batch = ranks × accumulate × batch_size)")(
      "train.lr", po::value<double>()->default_value(2e-3), "peak learning rate")(
      "train.optimizer", po::value<std::string>()->default_value("adamw"), "adamw | sgd")(
      "train.momentum", po::value<double>()->default_value(0.9), "sgd momentum")(
      "train.schedule", po::value<std::string>()->default_value("onecycle"), "onecycle | cosine")(
      "train.warmup", po::value<double>()->default_value(0.1), "share of steps warming up (onecycle: pct_start)")(
      "train.weight_decay", po::value<double>()->default_value(0.01), "decoupled weight decay (not on BN, biases)")(
      "train.grad_clip", po::value<double>()->default_value(10.0), "global gradient-norm clip (0: off)")(
      "train.class_weights", po::value<std::string>()->default_value(""),
      "cross-entropy weight per training id 0..19, comma-separated (empty: all 1)")(
      "train.augment", po::value<bool>()->default_value(true), "rotation, scaling, flip, translation")(
      "train.rotation", po::value<double>()->default_value(3.141592653589793),
      "augmentation: largest global rotation about z, rad (π: any heading; detectors often use π/4)")(
      "train.balance", po::value<std::string>()->default_value("lpt"),
      "lpt | bucket | none: how each step's frames are split over ranks")(
      "train.cost_refit", po::value<int64_t>()->default_value(0),
      "steps between refits of the lpt cost model from measured times (0: stored cost only; refits make the "
      "split, and so the bits, depend on timing)")("train.sync_bn", po::value<bool>()->default_value(false),
                                                   "BN statistics over all ranks' batches (SyncBN)")(
      "train.bucket_mb", po::value<double>()->default_value(25.0),
      "gradient all-reduce bucket size, MB (buckets overlap backward)")(
      "train.seed", po::value<uint64_t>()->default_value(1), "seed of initialisation, data order, augmentation")(
      "train.max_time", po::value<double>()->default_value(0),
      "seconds of wall time: checkpoint and exit with code 75 (requeue) before it runs out (0: no limit)")(
      "train.on_nonfinite", po::value<std::string>()->default_value("stop"),
      "a step with a non-finite loss or gradient norm: stop (exit 4, no checkpoint) | skip (no update)")(
      "train.max_nonfinite_skips", po::value<int>()->default_value(5),
      "with on_nonfinite skip: stop after more than this many skipped steps in a row")(
      "train.device", po::value<std::string>()->default_value("auto"),
      "auto | cpu | cuda (auto: this rank's GPU when it has one; one GPU per rank, by node-local rank)")(
      "train.comm", po::value<std::string>()->default_value("auto"),
      "auto | mpi | nccl: the gradient all-reduce (auto: nccl on a GPU where the build has NCCL, else mpi)")(
      "train.deterministic", po::value<bool>()->default_value(true),
      "cuda: only deterministic cuDNN convolution algorithms (the same bits every run); false: the fastest "
      "cuDNN's heuristics propose (the CPU is always deterministic)")(
      "train.precision", po::value<std::string>()->default_value("fp32"),
      "fp32 | bf16 | fp16 (cuda): the inputs of every GEMM (linear layers, convolutions) in that type, "
      "accumulated in fp32; parameters, optimizer state, BN statistics, losses and gradients stay fp32; fp16 "
      "scales the loss dynamically (train.loss_scale)")(
      "train.loss_scale", po::value<double>()->default_value(65536.0),
      "fp16: the dynamic loss scale's start (GradScaler's init_scale); halved on a step whose gradients "
      "overflow (skipped), doubled after train.loss_scale_growth_interval steps without")(
      "train.loss_scale_growth_interval", po::value<int64_t>()->default_value(2000),
      "fp16: steps without overflow before the loss scale doubles")(
      "train.cuda_graphs", po::value<bool>()->default_value(false),
      "cuda: the fixed-shape dense BEV part of the step (backbone and head, forward and backward) captured as "
      "a CUDA graph once per batch size and replayed (the point stages and losses run outside)")(
      "train.threads", po::value<int>()->default_value(0),
      "OpenMP threads per rank (0: OMP_NUM_THREADS, else the node's cores / its ranks)")(
      "checkpoint.every", po::value<int64_t>()->default_value(0), "steps between checkpoints (0: at the end only)")(
      "checkpoint.keep", po::value<int>()->default_value(3), "newest checkpoints kept")(
      "log.every", po::value<int64_t>()->default_value(10), "steps between progress lines")(
      "log.timeline", po::value<std::string>()->default_value(""),
      "Chrome trace-event JSON of every rank's phases (empty: none)")(
      "log.prom_file", po::value<std::string>()->default_value(""),
      "Prometheus text exposition, rewritten every log.every steps (empty: none)");
  return options;
}

TrainConfig train_config_from(const po::variables_map& v) {
  std::vector<std::string> models;
  for (const ModelEntry& entry : model_registry()) models.push_back(entry.name);
  require_choice(v, "model.name", models);
  require_choice(v, "train.optimizer", {"adamw", "sgd"});
  require_choice(v, "train.schedule", {"onecycle", "cosine"});
  require_choice(v, "train.balance", {"lpt", "bucket", "none"});
  require_choice(v, "train.device", {"auto", "cpu", "cuda"});
  require_choice(v, "train.on_nonfinite", {"stop", "skip"});
  for (const char* key :
       {"train.steps", "train.batch_size", "train.accumulate", "train.lr", "train.bucket_mb", "checkpoint.keep",
        "log.every", "model.head_channels", "train.loss_scale", "train.loss_scale_growth_interval"})
    require_positive(v, key);
  for (const char* key : {"train.weight_decay", "train.grad_clip", "train.threads", "train.max_nonfinite_skips",
                          "checkpoint.every", "train.momentum", "train.cost_refit", "train.max_time", "train.rotation"})
    require_non_negative(v, key);
  const double warmup = v["train.warmup"].as<double>();
  require(warmup > 0 && warmup < 1, "--train.warmup: must be in (0, 1)");
  TrainConfig c;
  c.train_data = v["data.train"].as<std::string>();
  c.val_data = v["data.val"].as<std::string>();
  c.model_name = v["model.name"].as<std::string>();
  // Every model's keys are read and checked, the chosen one's and the others' (a bad value is an error
  // whichever model a config names).
  for (const ModelEntry& entry : model_registry()) entry.read_keys(v, c);
  c.steps = v["train.steps"].as<int64_t>();
  c.device = v["train.device"].as<std::string>();
  c.comm = v["train.comm"].as<std::string>();
  require(is_reduce_backend_choice(c.comm), "--train.comm: '" + c.comm + "' is not one of " + reduce_backend_choices());
  c.deterministic = v["train.deterministic"].as<bool>();
  c.on_nonfinite = v["train.on_nonfinite"].as<std::string>();
  c.max_nonfinite_skips = v["train.max_nonfinite_skips"].as<int>();
  c.batch_size = v["train.batch_size"].as<int>();
  c.accumulate = v["train.accumulate"].as<int>();
  c.bucket_bytes = int64_t(v["train.bucket_mb"].as<double>() * 1e6);
  c.cost_refit = v["train.cost_refit"].as<int64_t>();
  c.lr = v["train.lr"].as<double>();
  c.optimizer.type = v["train.optimizer"].as<std::string>();
  c.optimizer.weight_decay = v["train.weight_decay"].as<double>();
  c.optimizer.momentum = v["train.momentum"].as<double>();
  c.schedule.type = v["train.schedule"].as<std::string>();
  c.schedule.peak_lr = c.lr;
  c.schedule.total_steps = c.steps;
  c.schedule.warmup_fraction = warmup;
  c.grad_clip = v["train.grad_clip"].as<double>();
  c.class_weights = parse_non_negative_floats(v["train.class_weights"].as<std::string>(), "train.class_weights");
  model_entry(c.model_name, "model.name").check_config(c);  // the model's own rules for its keys
  require(
      c.class_weights.empty() || c.class_weights.size() == size_t(kNumSemanticClasses),
      "--train.class_weights: expected 20 values (one per training id), got " + std::to_string(c.class_weights.size()));
  c.augment = v["train.augment"].as<bool>();
  c.max_rotation = v["train.rotation"].as<double>();
  c.balance = v["train.balance"].as<std::string>();
  c.sync_bn = v["train.sync_bn"].as<bool>();
  c.cuda_graphs = v["train.cuda_graphs"].as<bool>();
  c.precision = parse_precision(v["train.precision"].as<std::string>(), "--train.precision");
  c.loss_scale = v["train.loss_scale"].as<double>();
  c.loss_scale_growth_interval = v["train.loss_scale_growth_interval"].as<int64_t>();
  // (Compared with the defaults, not asked whether given: a run directory's config.ini states every key.)
  const TrainConfig defaults;
  require(c.precision == Precision::fp16 || (c.loss_scale == defaults.loss_scale &&
                                             c.loss_scale_growth_interval == defaults.loss_scale_growth_interval),
          "--train.loss_scale, --train.loss_scale_growth_interval: only with train.precision fp16 (this run is " +
              std::string(precision_name(c.precision)) + ")");
  c.seed = v["train.seed"].as<uint64_t>();
  c.threads = v["train.threads"].as<int>();
  c.max_time_s = v["train.max_time"].as<double>();
  c.checkpoint_every = v["checkpoint.every"].as<int64_t>();
  c.checkpoint_keep = v["checkpoint.keep"].as<int>();
  c.log_every = v["log.every"].as<int64_t>();
  c.timeline = v["log.timeline"].as<std::string>();
  c.prom_file = v["log.prom_file"].as<std::string>();
  return c;
}

std::string config_to_ini(const po::variables_map& values) {
  std::map<std::string, std::map<std::string, std::string>> sections;
  const po::options_description options = config_options();
  for (const auto& option : options.options()) {
    const std::string& name = option->long_name();
    const auto dot = name.find('.');
    const auto& any = values[name].value();
    std::string text;
    if (const auto* s = boost::any_cast<std::string>(&any))
      text = *s;
    else if (const auto* i = boost::any_cast<int64_t>(&any))
      text = std::to_string(*i);
    else if (const auto* n = boost::any_cast<int>(&any))
      text = std::to_string(*n);
    else if (const auto* u = boost::any_cast<uint64_t>(&any))
      text = std::to_string(*u);
    else if (const auto* b = boost::any_cast<bool>(&any))
      text = *b ? "true" : "false";
    else if (const auto* d = boost::any_cast<double>(&any)) {
      std::ostringstream out;
      out.precision(17);
      out << *d;
      text = out.str();
    }
    sections[name.substr(0, dot)][name.substr(dot + 1)] = text;
  }
  std::ostringstream ini;
  for (const auto& [section, keys] : sections) {
    ini << "[" << section << "]\n";
    for (const auto& [key, value] : keys) ini << key << " = " << value << "\n";
  }
  return ini.str();
}

po::variables_map parse_config_text(const std::string& text, const std::string& where) {
  po::variables_map values;
  std::istringstream in(text);
  try {
    po::store(po::parse_config_file(in, config_options(), false), values);
    po::notify(values);
  } catch (const po::error& e) {
    throw InputError(where + ": stored config: " + option_error_text(e));
  }
  return values;
}

}  // namespace lt
