// lidartrain balance: replays a dataset's per-frame costs through each load-balancing strategy for
// any rank count, so that a user can choose before submitting a large job.
#include "mpi/balance.hpp"

#include <cmath>
#include <cstdio>
#include <iostream>
#include <sstream>

#include "io/atomic_file.hpp"
#include "io/dataset.hpp"
#include "src/cli/options.hpp"
#include "src/commands/commands.hpp"
#include "src/common/error.hpp"
#include "src/common/json.hpp"
#include "src/common/stats.hpp"

namespace lt {

int balance_main(int argc, char** argv, const Comm& comm) {
  po::options_description options("Options");
  options.add_options()("data", po::value<std::string>()->required()->value_name("DIR"),
                        "dataset (its /cost is the predicted cost)")(
      "ranks", po::value<std::string>()->required()->value_name("R[,R…]"), "rank counts to replay, e.g. 2,8,64,512")(
      "batch", po::value<int>()->default_value(2)->value_name("B"), "frames per rank per step")(
      "epochs", po::value<int>()->default_value(2)->value_name("E"), "epochs replayed")(
      "seed", po::value<uint64_t>()->default_value(1)->value_name("S"), "the training seed")(
      "json", po::value<std::string>()->value_name("FILE"), "also write the table as JSON");
  const ParsedCommand parsed = parse_command("balance", options, {}, argc, argv);
  if (parsed.help) {
    if (comm.is_root())
      std::cout << usage_text("balance", "--data DIR --ranks R[,R…] [--batch B] [--json FILE]",
                              "Predicted straggler imbalance (max/mean of the ranks' cost per step) and throughput\n"
                              "gain over `none` of each strategy (none, bucket, lpt), from the stored costs.",
                              options);
    return kExitOk;
  }
  const auto& values = parsed.values;
  require_positive(values, "batch");
  require_positive(values, "epochs");
  const std::vector<int> rank_counts = parse_positive_ints(values["ranks"].as<std::string>(), "ranks");
  const std::string data = values["data"].as<std::string>();
  const DatasetReader reader(data);
  const std::vector<double> costs(reader.costs().begin(), reader.costs().end());
  const int batch = values["batch"].as<int>();
  if (!comm.is_root()) return kExitOk;

  const Distribution cost = distribution_of(costs);
  std::printf("balance: %s, %zu frames, cost min %.0f median %.0f p90 %.0f max %.0f, %d frames per rank\n",
              data.c_str(), costs.size(), cost.min, cost.median, cost.p90, cost.max, batch);
  std::printf("%7s %-8s %15s %14s %16s\n", "ranks", "strategy", "mean max/mean", "worst max/mean", "samples/s vs none");
  JsonWriter json;
  json.begin_object().key("data").value(data).key("frames").value(int64_t(costs.size())).key("batch").value(batch);
  json.key("runs").begin_array();
  for (int ranks : rank_counts) {
    const int64_t global = int64_t(ranks) * batch;
    const int64_t steps =
        values["epochs"].as<int>() * std::max<int64_t>(1, (int64_t(costs.size()) + global - 1) / global);
    double none_throughput = 0;
    for (Balance balance : {Balance::none, Balance::bucket, Balance::lpt}) {
      const FrameSampler sampler(balance, costs, ranks, batch, values["seed"].as<uint64_t>());
      const BalanceReplay replay = replay_balance(sampler, steps);
      if (balance == Balance::none) none_throughput = replay.frames_per_cost;
      const double gain = 100.0 * (replay.frames_per_cost / none_throughput - 1.0);
      std::printf("%7d %-8s %15.3f %14.3f %+15.1f%%\n", ranks, balance_name(balance), replay.mean_imbalance,
                  replay.max_imbalance, gain);
      json.begin_object()
          .key("ranks")
          .value(ranks)
          .key("strategy")
          .value(balance_name(balance))
          .key("steps")
          .value(steps)
          .key("mean_imbalance")
          .value(replay.mean_imbalance)
          .key("max_imbalance")
          .value(replay.max_imbalance)
          .key("throughput_gain_percent")
          .value(gain)
          .end_object();
    }
  }
  json.end_array().end_object();
  if (values.count("json")) write_text_file_atomically(values["json"].as<std::string>(), json.str() + "\n");
  return kExitOk;
}

}  // namespace lt
